"""The Upstox v3 feed as the simulator speaks it: FeedResponse frames out, JSON requests in.

A protobuf encoder for the few messages the simulator sends (docs/upstox/FACTS.md
1.4): FeedResponse with its `feeds` map, each Feed carrying its LTPC where the
subscription's mode puts it (ltpc; fullFeed.marketFF or .indexFF; firstLevelWithGreeks),
and the market_info frame sent on connect. The SDK's generated classes decode
these frames in tests/sim/upstox/test_wire_oracle.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TYPE_INITIAL = 0
TYPE_LIVE = 1
TYPE_MARKET_INFO = 2

MODES = ("ltpc", "full", "option_greeks", "full_d30")
METHODS = ("sub", "unsub", "change_mode")
# RequestMode enum values for each subscription mode.
_REQUEST_MODE = {"ltpc": 0, "full": 1, "option_greeks": 2, "full_d30": 3}
# MarketStatus enum values.
MARKET_STATUS = {
    "PRE_OPEN_START": 0,
    "PRE_OPEN_END": 1,
    "NORMAL_OPEN": 2,
    "NORMAL_CLOSE": 3,
    "CLOSING_START": 4,
    "CLOSING_END": 5,
}

_DOUBLE = struct.Struct("<d")


class RequestError(ValueError):
    """A client request the feed refuses; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class Quote:
    """One instrument's last trade as a frame carries it."""

    key: str
    ltp: float
    ltt: int = 0  # epoch milliseconds
    ltq: int = 0
    cp: float = 0.0  # previous close
    index: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    guid: str
    method: str
    keys: tuple[str, ...]
    mode: str | None


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # int64 negatives are ten-byte varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _double(number: int, value: float) -> bytes:
    # proto3 leaves a zero scalar out.
    return _key(number, 1) + _DOUBLE.pack(value) if value else b""


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value) if value else b""


def ltpc(quote: Quote) -> bytes:
    return _double(1, quote.ltp) + _int(2, quote.ltt) + _int(3, quote.ltq) + _double(4, quote.cp)


def feed(quote: Quote, mode: str) -> bytes:
    """A `Feed` with the quote's LTPC where `mode` puts it, and its requestMode."""
    body = ltpc(quote)
    if mode == "ltpc":
        union = _len(1, body)
    elif mode in ("full", "full_d30"):
        inner = _len(1, body)  # MarketFullFeed.ltpc / IndexFullFeed.ltpc
        union = _len(2, _len(2 if quote.index else 1, inner))
    elif mode == "option_greeks":
        union = _len(3, _len(1, body))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return union + _int(4, _REQUEST_MODE[mode])


def feed_response(frame_type: int, current_ts: int, quotes: Iterable[tuple[Quote, str]]) -> bytes:
    """One FeedResponse with a map entry per (quote, mode)."""
    parts = [_int(1, frame_type)]
    for quote, mode in quotes:
        entry = _len(1, quote.key.encode()) + _len(2, feed(quote, mode))
        parts.append(_len(2, entry))
    parts.append(_int(3, current_ts))
    return b"".join(parts)


def market_info(current_ts: int, segments: Mapping[str, str]) -> bytes:
    """The frame sent first on every connection: each segment's market status."""
    entries = b"".join(
        _len(1, _len(1, name.encode()) + _int(2, MARKET_STATUS[status]))
        for name, status in segments.items()
    )
    return _int(1, TYPE_MARKET_INFO) + _int(3, current_ts) + _len(4, entries)


def parse_request(message: bytes | str) -> Request:
    """A client's sub / unsub / change_mode request; `RequestError` naming what is wrong."""
    try:
        body = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("request is not JSON") from None
    if not isinstance(body, dict):
        raise RequestError("request is not a JSON object")
    method = body.get("method")
    if method not in METHODS:
        raise RequestError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise RequestError("data must be an object")
    keys = data.get("instrumentKeys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise RequestError("data.instrumentKeys must be a non-empty list of strings")
    mode = data.get("mode")
    if method == "sub" and mode is None:
        mode = "ltpc"  # the feed's default (FACTS 1.2)
    if method == "change_mode" and mode is None:
        raise RequestError("change_mode needs data.mode")
    if mode is not None and mode not in MODES:
        raise RequestError(f"data.mode must be one of {', '.join(MODES)}, not {mode!r}")
    guid = body.get("guid")
    return Request(str(guid or ""), method, tuple(keys), None if method == "unsub" else mode)
