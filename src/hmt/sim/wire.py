"""The simulator's own encoder for Kite's binary ticker frames (FACTS 1.4-1.5).

Deliberately separate from the engine's decoder (hmt.kite) so a codec bug
cannot hide by being the same on both sides; both are pinned to the real
`.packet` fixtures. All integers are big-endian; prices are wire units.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum

from hmt.sim.prices import Quote


class Mode(StrEnum):
    """Kite's three streaming modes."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


HEARTBEAT = b"\x00"  # a one-byte binary frame: "nothing to stream, still here"

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">II")  # 8 bytes
_QUOTE = struct.Struct(">11I")  # 44 bytes
_FULL = struct.Struct(">16I" + "IIHH" * 10)  # 184 bytes: quote + times, OI, 10 depth levels
_INDEX_QUOTE = struct.Struct(">6Ii")  # 28 bytes: the change field is signed
_INDEX_FULL = struct.Struct(">6IiI")  # 32 bytes: plus the exchange timestamp
_U32 = 0xFFFF_FFFF

PACKET_SIZES = {
    (False, Mode.LTP): 8,
    (False, Mode.QUOTE): 44,
    (False, Mode.FULL): 184,
    (True, Mode.LTP): 8,
    (True, Mode.QUOTE): 28,
    (True, Mode.FULL): 32,
}


def ltp_packet(token: int, last: int) -> bytes:
    """The 8-byte packet of LTP mode (tradable instruments and indices alike)."""
    return _LTP.pack(token, last)


def _quote_words(q: Quote) -> tuple[int, ...]:
    # Counters are clamped to uint32: a very long run must not crash the encoder.
    return (
        q.token,
        q.last,
        q.last_qty & _U32,
        q.average,
        q.volume & _U32,
        q.buy_qty & _U32,
        q.sell_qty & _U32,
        q.open,
        q.high,
        q.low,
        q.close,
    )


def quote_packet(q: Quote) -> bytes:
    """The 44-byte quote-mode packet of a tradable instrument."""
    return _QUOTE.pack(*_quote_words(q))


Level = tuple[int, int, int]  # quantity, price, orders


def full_packet(
    q: Quote,
    exchange_timestamp: int | None = None,
    oi: int = 0,
    oi_day_high: int = 0,
    oi_day_low: int = 0,
    depth_levels: tuple[list[Level], list[Level]] | None = None,
) -> bytes:
    """The 184-byte full-mode packet: quote, timestamps, OI and five levels of depth."""
    bids, asks = depth_levels if depth_levels is not None else q.depth()
    depth: list[int] = []
    for qty, price, orders in (*bids, *asks):
        depth += (qty & _U32, price, orders & 0xFFFF, 0)
    stamp = q.trade_time if exchange_timestamp is None else exchange_timestamp
    return _FULL.pack(*_quote_words(q), q.trade_time, oi, oi_day_high, oi_day_low, stamp, *depth)


def index_quote_packet(q: Quote) -> bytes:
    """The 28-byte quote packet of an index: OHLC ordered high, low, open, close."""
    return _INDEX_QUOTE.pack(q.token, q.last, q.high, q.low, q.open, q.close, q.last - q.close)


def index_full_packet(q: Quote) -> bytes:
    """The 32-byte full packet of an index: the quote packet plus the exchange timestamp."""
    return _INDEX_FULL.pack(
        q.token, q.last, q.high, q.low, q.open, q.close, q.last - q.close, q.trade_time
    )


def packet(q: Quote, mode: Mode) -> bytes:
    """The packet Kite sends for this quote in this mode."""
    if mode is Mode.LTP:
        return ltp_packet(q.token, q.last)
    if q.instrument.is_index:
        return index_quote_packet(q) if mode is Mode.QUOTE else index_full_packet(q)
    return quote_packet(q) if mode is Mode.QUOTE else full_packet(q)


def frame(packets: Sequence[bytes]) -> bytes:
    """One binary message: a packet count, then each packet behind its length."""
    if len(packets) > 0xFFFF:
        raise ValueError(f"a frame holds at most 65535 packets, not {len(packets)}")
    parts = [_U16.pack(len(packets))]
    for p in packets:
        parts.append(_U16.pack(len(p)))
        parts.append(p)
    return b"".join(parts)
