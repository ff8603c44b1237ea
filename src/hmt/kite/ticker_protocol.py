"""The Kite ticker's binary frames, sans I/O: bytes in, values out, and back.

A frame is a big-endian uint16 packet count, then per packet a uint16 length
and the packet; a packet's kind is given only by its length (FACTS.md 1.4-1.5).
A one-byte frame is a heartbeat.

Two decoders read the same frames:

- `decode_ltps` is the engine's path: it returns the instrument tokens and last
  prices as two lists of ints in wire units, one `unpack_from` per packet and no
  object per tick, for `book.on_tick(token, ltp)`;
- `decode_frame` is the UI's and tools' path: typed ticks with every field.

Neither raises on input from the network. Each returns what it could read and a
`FrameError` for the first thing it could not (None when the frame is sound):
a truncated packet stops the frame, a packet of unknown size is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from hmt.kite.ticks import (
    DEPTH_LEVELS,
    FrameError,
    FullTick,
    IndexTick,
    LtpTick,
    QuoteTick,
    Tick,
    fast_constructor,
)

HEARTBEAT: Final = b"\x00"
LTP_SIZE: Final = 8
INDEX_QUOTE_SIZE: Final = 28
INDEX_FULL_SIZE: Final = 32
QUOTE_SIZE: Final = 44
FULL_SIZE: Final = 184
PACKET_SIZES: Final = frozenset(
    {LTP_SIZE, INDEX_QUOTE_SIZE, INDEX_FULL_SIZE, QUOTE_SIZE, FULL_SIZE}
)

# Every field is read unsigned, as both official clients do (FACTS.md 1.5), except
# the index packet's change, which is a signed difference nobody else reads.
_U16 = struct.Struct(">H")
_PAIR = struct.Struct(">II")
_LTP = _PAIR
_INDEX_QUOTE = struct.Struct(">6Ii")
_INDEX_FULL = struct.Struct(">6IiI")
_QUOTE = struct.Struct(">11I")
# Depth entry: quantity, price, orders (uint16), 2 bytes of padding.
_FULL = struct.Struct(">16I" + "IIH2x" * (2 * DEPTH_LEVELS))

_unpack_u16 = _U16.unpack_from
_unpack_pair = _PAIR.unpack_from
# Precompiled readers for runs of same-size packets, keyed by (size, count).
_RUN: Final = 128
_RUNS_KEPT: Final = 64
_RUNS: dict[tuple[int, int], struct.Struct] = {}


def decode_ltps(frame: bytes) -> tuple[Sequence[int], Sequence[int], FrameError | None]:
    """The (tokens, last prices, error) of a binary frame, prices in wire units.

    Every packet kind starts with the token and the last price, so only those
    eight bytes of each are read. A heartbeat gives two empty sequences and no
    error. A frame whose packets all have the same size (the usual case: one
    mode for every instrument) is read with one precompiled `Struct` call per
    run of up to 128 packets, the lengths checked from the same call.
    """
    n = len(frame)
    if n < 2:
        return (), (), (None if n == 1 else FrameError.EMPTY)
    (count,) = _unpack_u16(frame, 0)
    if n >= 4:
        (size,) = _unpack_u16(frame, 2)
        if n == 2 + count * (2 + size) and size in PACKET_SIZES:
            same = _decode_same_size(frame, count, size)
            if same is not None:
                return same[0], same[1], None
    return _decode_ltps_each(frame, n, count)


def _decode_same_size(
    frame: bytes, count: int, size: int
) -> tuple[Sequence[int], Sequence[int]] | None:
    """Tokens and prices of `count` packets of `size` bytes; None if a length differs."""
    if count <= _RUN:
        values = _run_struct(size, count).unpack_from(frame, 2)
        if values[0::3].count(size) != count:
            return None
        return values[1::3], values[2::3]
    tokens: list[int] = []
    ltps: list[int] = []
    step = _RUN * (2 + size)
    for first in range(0, count, _RUN):
        run = min(_RUN, count - first)
        values = _run_struct(size, run).unpack_from(frame, 2 + (first // _RUN) * step)
        if values[0::3].count(size) != run:
            return None
        tokens += values[1::3]
        ltps += values[2::3]
    return tokens, ltps


def _run_struct(size: int, count: int) -> struct.Struct:
    """A Struct reading (length, token, price) of `count` consecutive `size`-byte packets."""
    key = (size, count)
    found = _RUNS.get(key)
    if found is None:
        if len(_RUNS) >= _RUNS_KEPT:
            _RUNS.clear()  # frames of many different lengths: start over rather than grow
        skip = f"{size - 8}x" if size > 8 else ""
        found = _RUNS[key] = struct.Struct(">" + f"HII{skip}" * count)
    return found


def _decode_ltps_each(
    frame: bytes, n: int, count: int
) -> tuple[Sequence[int], Sequence[int], FrameError | None]:
    """The packet-by-packet reading of `decode_ltps`, for mixed and malformed frames."""
    tokens: list[int] = []
    ltps: list[int] = []
    error: FrameError | None = None
    at = 2
    for _ in range(count):
        if at + 2 > n:
            return tokens, ltps, error or FrameError.TRUNCATED
        (size,) = _unpack_u16(frame, at)
        end = at + 2 + size
        if end > n:
            return tokens, ltps, error or FrameError.TRUNCATED
        if size in PACKET_SIZES:
            token, ltp = _unpack_pair(frame, at + 2)
            tokens.append(token)
            ltps.append(ltp)
        elif error is None:
            error = FrameError.UNKNOWN_PACKET_SIZE
        at = end
    if at != n and error is None:
        error = FrameError.TRAILING_BYTES
    return tokens, ltps, error


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """The ticks of one binary frame, and what was wrong with it (None if nothing)."""

    ticks: tuple[Tick, ...]
    error: FrameError | None = None
    heartbeat: bool = False


_new_full = fast_constructor(FullTick)
_new_quote = fast_constructor(QuoteTick)
_new_index = fast_constructor(IndexTick)
_new_ltp = fast_constructor(LtpTick)


def decode_packet(packet: bytes | memoryview, at: int = 0, size: int | None = None) -> Tick | None:
    """The tick in `size` bytes at `at` (default: all of `packet`); None for an unknown size."""
    if size is None:
        size = len(packet) - at
    if size == FULL_SIZE:
        v = _FULL.unpack_from(packet, at)
        return _new_full(*v[:16], v[16:])
    if size == LTP_SIZE:
        return _new_ltp(*_LTP.unpack_from(packet, at))
    if size == QUOTE_SIZE:
        return _new_quote(*_QUOTE.unpack_from(packet, at))
    if size == INDEX_QUOTE_SIZE:
        return _new_index(*_INDEX_QUOTE.unpack_from(packet, at))
    if size == INDEX_FULL_SIZE:
        return _new_index(*_INDEX_FULL.unpack_from(packet, at))
    return None


def decode_frame(frame: bytes) -> DecodedFrame:
    """Every tick of a binary frame, fully decoded; never raises."""
    n = len(frame)
    if n < 2:
        if n == 1:
            return DecodedFrame((), None, heartbeat=True)
        return DecodedFrame((), FrameError.EMPTY)
    ticks: list[Tick] = []
    error: FrameError | None = None
    (count,) = _unpack_u16(frame, 0)
    at = 2
    for _ in range(count):
        if at + 2 > n:
            error = error or FrameError.TRUNCATED
            break
        (size,) = _unpack_u16(frame, at)
        end = at + 2 + size
        if end > n:
            error = error or FrameError.TRUNCATED
            break
        tick = decode_packet(frame, at + 2, size)
        if tick is not None:
            ticks.append(tick)
        elif error is None:
            error = FrameError.UNKNOWN_PACKET_SIZE
        at = end
    else:
        if at != n and error is None:
            error = FrameError.TRAILING_BYTES
    return DecodedFrame(tuple(ticks), error)


def encode_packet(tick: Tick) -> bytes:
    """The wire packet for `tick`; ValueError if a field does not fit its wire type."""
    try:
        if isinstance(tick, LtpTick):
            return _LTP.pack(tick.instrument_token, tick.last_price)
        if isinstance(tick, QuoteTick):
            return _QUOTE.pack(
                tick.instrument_token, tick.last_price, tick.last_traded_quantity,
                tick.average_traded_price, tick.volume_traded, tick.total_buy_quantity,
                tick.total_sell_quantity, tick.open, tick.high, tick.low, tick.close,
            )  # fmt: skip
        if isinstance(tick, IndexTick):
            head = (
                tick.instrument_token, tick.last_price, tick.high, tick.low, tick.open,
                tick.close, tick.change,
            )  # fmt: skip
            if tick.exchange_timestamp is None:
                return _INDEX_QUOTE.pack(*head)
            return _INDEX_FULL.pack(*head, tick.exchange_timestamp)
        if len(tick.depth) != 6 * DEPTH_LEVELS:
            raise ValueError(f"a full packet carries {6 * DEPTH_LEVELS} depth integers")
        return _FULL.pack(
            tick.instrument_token, tick.last_price, tick.last_traded_quantity,
            tick.average_traded_price, tick.volume_traded, tick.total_buy_quantity,
            tick.total_sell_quantity, tick.open, tick.high, tick.low, tick.close,
            tick.last_trade_time, tick.oi, tick.oi_day_high, tick.oi_day_low,
            tick.exchange_timestamp, *tick.depth,
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(
            f"cannot encode {type(tick).__name__} {tick.instrument_token}: {exc}"
        ) from None


def frame_packets(packets: Iterable[bytes]) -> bytes:
    """A binary frame of raw packets: the count, then each packet after its length."""
    parts = [b""]
    count = 0
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
        count += 1
    parts[0] = _U16.pack(count)
    return b"".join(parts)


def encode_frame(ticks: Iterable[Tick]) -> bytes:
    """A binary frame carrying `ticks`, as the Kite server would send it."""
    return frame_packets(encode_packet(tick) for tick in ticks)


__all__ = [
    "FULL_SIZE",
    "HEARTBEAT",
    "INDEX_FULL_SIZE",
    "INDEX_QUOTE_SIZE",
    "LTP_SIZE",
    "PACKET_SIZES",
    "QUOTE_SIZE",
    "DecodedFrame",
    "decode_frame",
    "decode_ltps",
    "decode_packet",
    "encode_frame",
    "encode_packet",
    "frame_packets",
]
