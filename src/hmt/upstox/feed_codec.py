"""Upstox's v3 market-data feed, sans I/O: protobuf frames in, (key, last price) out.

A frame is one `FeedResponse` (docs/upstox/FACTS.md 1.4). hmt needs only the
last traded price of each instrument key: the LTPC found at `ltpc`,
`fullFeed.marketFF.ltpc` / `fullFeed.indexFF.ltpc` or
`firstLevelWithGreeks.ltpc`. protobuf's compiled parser reads the frame
against hmt's own minimal schema (`feed_schema`); the official SDK's
generated classes are the test oracle (tests/upstox/test_feed_codec.py).
A pure-Python wire reader was measured first and was 4-8x slower per entry
(docs/upstox/FEED.md).

Input from the network never raises anything but `FeedError`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from google.protobuf.message import DecodeError

from hmt.core.errors import HmtError
from hmt.upstox.feed_schema import FeedResponse

_parse = FeedResponse.FromString


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


def decode_frame(frame: bytes) -> FeedFrame:
    """Every (instrument key, last price in rupees) of one FeedResponse.

    The order is the map's, which protobuf does not keep: each key appears once
    per frame, so the order carries no meaning.

    A key whose feed carries no LTPC (a `market_info` frame has none) or whose
    price is 0 (no trade yet) gives nothing. A bad frame raises `FeedError`.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise FeedError(f"a frame is bytes, not {type(frame).__name__}")
    try:
        response = _parse(bytes(frame))
    except DecodeError as exc:
        raise FeedError(f"not a FeedResponse ({len(frame)} bytes): {exc}") from None
    prices: list[tuple[str, float]] = []
    for key, item in response.feeds.items():
        member = item.WhichOneof("FeedUnion")
        if member == "ltpc":
            ltp = item.ltpc.ltp
        elif member == "fullFeed":
            full = item.fullFeed
            inner = full.WhichOneof("FullFeedUnion")
            if inner is None:
                continue
            ltp = (full.marketFF if inner == "marketFF" else full.indexFF).ltpc.ltp
        elif member == "firstLevelWithGreeks":
            ltp = item.firstLevelWithGreeks.ltpc.ltp
        else:
            continue
        if ltp:
            if not key:
                raise FeedError("feeds: an entry with a price but no instrument key")
            prices.append((key, ltp))
    return FeedFrame(response.type, response.currentTs, prices)


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
