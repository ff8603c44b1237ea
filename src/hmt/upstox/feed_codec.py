"""Upstox's v3 market-data feed, sans I/O: protobuf frames in, (key, last price) out.

A frame is one `FeedResponse` (docs/upstox/FACTS.md 1.4). hmt needs only the
last traded price of each instrument key, so this reads the protobuf wire
format directly: the map `feeds` (field 2), and in each `Feed` the LTPC found
at `ltpc` (1), `fullFeed.marketFF.ltpc` / `fullFeed.indexFF.ltpc` (2.1.1 /
2.2.1) or `firstLevelWithGreeks.ltpc` (3.1); every other field is skipped by
its wire type. No `protobuf` at run time: the SDK's generated classes are the
test oracle (tests/upstox/test_feed_codec_oracle.py), and this stays a few
hundred lines that cannot import-fail or change under us (docs/upstox/FEED.md).

Input from the network never raises anything but `FeedError`, which names the
field and the offset where the frame stopped making sense.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

from hmt.core.errors import HmtError

_DOUBLE = struct.Struct("<d")
_unpack_double = _DOUBLE.unpack_from

# Wire types (protobuf encoding).
_VARINT: Final = 0
_I64: Final = 1
_LEN: Final = 2
_I32: Final = 5


class FeedError(HmtError, ValueError):
    """A frame that is not a FeedResponse we can read; says what and where."""


class FrameType(IntEnum):
    """`FeedResponse.type`."""

    INITIAL_FEED = 0
    LIVE_FEED = 1
    MARKET_INFO = 2


class Mode(StrEnum):
    """The subscription modes a request may name (FACTS 1.2)."""

    LTPC = "ltpc"
    FULL = "full"
    OPTION_GREEKS = "option_greeks"
    FULL_D30 = "full_d30"


class Method(StrEnum):
    SUBSCRIBE = "sub"
    UNSUBSCRIBE = "unsub"
    CHANGE_MODE = "change_mode"


@dataclass(frozen=True, slots=True)
class FeedFrame:
    """What one frame says: its type, its timestamp, and each key's last price in rupees."""

    type: int
    current_ts: int
    prices: list[tuple[str, float]] = field(default_factory=list)


def _varint(data: bytes, at: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if at >= end:
            raise FeedError(f"truncated varint at byte {at}")
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, at
        shift += 7
        if shift >= 70:
            raise FeedError(f"varint longer than 10 bytes at byte {at}")


def _skip(data: bytes, at: int, end: int, wire: int, what: str) -> int:
    """The offset after one field of wire type `wire` whose value starts at `at`."""
    if wire == _VARINT:
        return _varint(data, at, end)[1]
    if wire == _I64:
        at += 8
    elif wire == _I32:
        at += 4
    elif wire == _LEN:
        size, at = _varint(data, at, end)
        at += size
    else:
        raise FeedError(f"{what}: unsupported wire type {wire} at byte {at}")
    if at > end:
        raise FeedError(f"{what}: field runs past the end of its message (byte {at} > {end})")
    return at


def _length(data: bytes, at: int, end: int, what: str) -> tuple[int, int]:
    size, at = _varint(data, at, end)
    stop = at + size
    if stop > end:
        raise FeedError(f"{what}: length {size} runs past the end of its message")
    return at, stop


def _ltpc_price(data: bytes, at: int, end: int) -> float:
    """`LTPC.ltp` (field 1, double); 0.0 when absent, as proto3 says."""
    ltp = 0.0
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if number == 1 and wire == _I64:
            if at + 8 > end:
                raise FeedError("ltpc.ltp: truncated double")
            ltp = _unpack_double(data, at)[0]
            at += 8
        else:
            at = _skip(data, at, end, wire, "ltpc")
    return ltp


def _find_ltpc(data: bytes, at: int, end: int, path: tuple[int, ...], what: str) -> float | None:
    """The LTPC's price found by following field numbers `path` from [at, end)."""
    found: float | None = None
    head, rest = path[0], path[1:]
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if number == head and wire == _LEN:
            start, stop = _length(data, at, end, what)
            found = (
                _ltpc_price(data, start, stop)
                if not rest
                else _find_ltpc(data, start, stop, rest, what)
            )
            at = stop
        else:
            at = _skip(data, at, end, wire, what)
    return found


def _full_feed_price(data: bytes, at: int, end: int) -> float | None:
    """`FullFeed`: marketFF (1) or indexFF (2), each with its ltpc at field 1."""
    found: float | None = None
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if wire == _LEN and number in (1, 2):
            start, stop = _length(data, at, end, "fullFeed")
            found = _find_ltpc(data, start, stop, (1,), "fullFeed")
            at = stop
        else:
            at = _skip(data, at, end, wire, "fullFeed")
    return found


def _feed_price(data: bytes, at: int, end: int) -> float | None:
    """A `Feed`'s last price, from whichever member of its oneof is present."""
    found: float | None = None
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if wire == _LEN and number in (1, 2, 3):
            start, stop = _length(data, at, end, "feed")
            if number == 1:
                found = _ltpc_price(data, start, stop)
            elif number == 2:
                found = _full_feed_price(data, start, stop)
            else:
                found = _find_ltpc(data, start, stop, (1,), "firstLevelWithGreeks")
            at = stop
        else:
            at = _skip(data, at, end, wire, "feed")
    return found


def _entry(data: bytes, at: int, end: int) -> tuple[str, float | None]:
    """One `feeds` map entry: key (1, string) and value (2, Feed)."""
    name = ""
    price: float | None = None
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if number == 1 and wire == _LEN:
            start, stop = _length(data, at, end, "feeds.key")
            try:
                name = data[start:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise FeedError(f"feeds.key: not UTF-8 at byte {start}") from None
            at = stop
        elif number == 2 and wire == _LEN:
            start, stop = _length(data, at, end, "feeds.value")
            price = _feed_price(data, start, stop)
            at = stop
        else:
            at = _skip(data, at, end, wire, "feeds entry")
    return name, price


def decode_frame(frame: bytes) -> FeedFrame:
    """Every (instrument key, last price in rupees) of one FeedResponse, in frame order.

    A key whose feed carries no LTPC (a `market_info` frame has none) or whose
    price is 0 (no trade yet) gives nothing. A bad frame raises `FeedError`.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise FeedError(f"a frame is bytes, not {type(frame).__name__}")
    data = bytes(frame)
    end = len(data)
    at = 0
    kind = 0
    current_ts = 0
    prices: list[tuple[str, float]] = []
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if number == 2 and wire == _LEN:
            start, stop = _length(data, at, end, "feeds")
            name, price = _entry(data, start, stop)
            if price:
                if not name:
                    raise FeedError(f"feeds: an entry with a price but no instrument key at {at}")
                prices.append((name, price))
            at = stop
        elif number == 1 and wire == _VARINT:
            kind, at = _varint(data, at, end)
        elif number == 3 and wire == _VARINT:
            current_ts, at = _varint(data, at, end)
        elif number == 0:
            raise FeedError(f"field number 0 at byte {at}")
        else:
            at = _skip(data, at, end, wire, "FeedResponse")
    return FeedFrame(kind, current_ts, prices)


def request(method: Method, keys: Iterable[str], mode: Mode | None = None) -> bytes:
    """One subscription request as the bytes to send in a binary frame (FACTS 1.2)."""
    listed = list(dict.fromkeys(keys))
    if not listed:
        raise ValueError("a feed request names at least one instrument key")
    if method is Method.UNSUBSCRIBE and mode is not None:
        raise ValueError("unsub takes no mode")
    if method is not Method.UNSUBSCRIBE and mode is None:
        raise ValueError(f"{method} needs a mode")
    data: dict[str, object] = {"instrumentKeys": listed}
    if mode is not None:
        data["mode"] = str(mode)
    message = {"guid": str(uuid.uuid4()), "method": str(method), "data": data}
    return json.dumps(message, separators=(",", ":")).encode()
