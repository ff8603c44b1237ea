"""What the Kite ticker sends, decoded: ticks by mode, market depth, and what can be wrong.

Prices stay integers in the segment's wire unit (../shared/kite/FACTS.md 1.6), as
the core compares them; `decimal()` turns one into rupees exactly. Timestamps
stay the raw Unix seconds from the wire, and the `*_at` properties turn them
into timezone-aware UTC datetimes: never the naive local time the official
client produces, which changes with the host's time zone (FACTS.md 1.7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from hmt.core.prices import to_decimal
from hmt.kite.segments import divisor_for, is_index


class Mode(StrEnum):
    """A subscription mode, as the wire names it (FACTS.md 1.2)."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


class FrameError(StrEnum):
    """Why an incoming frame was (partly) rejected; the client counts each kind.

    A decoder never raises on input from the network: it returns the packets it
    could read and one of these for the first thing it could not.
    """

    EMPTY = "empty"  # a zero-length binary frame (a heartbeat is one byte)
    TRUNCATED = "truncated"  # a length prefix or a packet runs past the end of the frame
    UNKNOWN_PACKET_SIZE = "unknown_packet_size"  # not 8/28/32/44/184 bytes; skipped
    TRAILING_BYTES = "trailing_bytes"  # bytes left after the announced packets
    BAD_TEXT = "bad_text"  # a text frame that is not a JSON object of the documented shape
    UNKNOWN_TEXT_TYPE = "unknown_text_type"  # a JSON message whose "type" is not documented


def epoch_to_utc(seconds: int) -> datetime:
    """Unix seconds from the wire as a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


class _Priced:
    """What every tick can say about its instrument; mixed into the tick classes."""

    __slots__ = ()
    instrument_token: int

    @property
    def divisor(self) -> int:
        """The divisor of this instrument's segment (price units per rupee)."""
        return divisor_for(self.instrument_token)

    @property
    def tradable(self) -> bool:
        """False for indices (segment 9), which have no orders."""
        return not is_index(self.instrument_token)

    def decimal(self, units: int) -> Decimal:
        """A price of this instrument in wire units as an exact decimal amount."""
        return to_decimal(units, divisor_for(self.instrument_token))


@dataclass(frozen=True, slots=True)
class LtpTick(_Priced):
    """An 8-byte packet: the last traded price only (any instrument)."""

    instrument_token: int
    last_price: int

    @property
    def mode(self) -> Mode:
        return Mode.LTP


@dataclass(frozen=True, slots=True)
class IndexTick(_Priced):
    """A 28-byte (quote) or 32-byte (full, with exchange_timestamp) index packet.

    `change` is bytes 24-28 as sent, read as a signed int32; the official
    clients ignore it and compute their own, so nothing here relies on it.
    """

    instrument_token: int
    last_price: int
    high: int
    low: int
    open: int
    close: int
    change: int
    exchange_timestamp: int | None = None

    @property
    def mode(self) -> Mode:
        return Mode.QUOTE if self.exchange_timestamp is None else Mode.FULL

    @property
    def exchange_at(self) -> datetime | None:
        ts = self.exchange_timestamp
        return None if ts is None else epoch_to_utc(ts)


@dataclass(frozen=True, slots=True)
class QuoteTick(_Priced):
    """A 44-byte packet: price, quantities and the day's OHLC of a tradable instrument."""

    instrument_token: int
    last_price: int
    last_traded_quantity: int
    average_traded_price: int
    volume_traded: int
    total_buy_quantity: int
    total_sell_quantity: int
    open: int
    high: int
    low: int
    close: int

    @property
    def mode(self) -> Mode:
        return Mode.QUOTE


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One level of market depth: quantity, price in wire units, number of orders."""

    quantity: int
    price: int
    orders: int


@dataclass(frozen=True, slots=True)
class FullTick(_Priced):
    """A 184-byte packet: the quote fields, times, open interest and 5+5 levels of depth.

    `depth` holds the 30 depth integers as the wire orders them: (quantity,
    price, orders) for the 5 bids, then for the 5 asks. `bids` and `asks` build
    `DepthLevel`s from them when asked: most readers of a tick never look at
    depth, and ten objects per tick would cost more than the rest of the decode.
    """

    instrument_token: int
    last_price: int
    last_traded_quantity: int
    average_traded_price: int
    volume_traded: int
    total_buy_quantity: int
    total_sell_quantity: int
    open: int
    high: int
    low: int
    close: int
    last_trade_time: int
    oi: int
    oi_day_high: int
    oi_day_low: int
    exchange_timestamp: int
    depth: tuple[int, ...]

    @property
    def mode(self) -> Mode:
        return Mode.FULL

    @property
    def bids(self) -> tuple[DepthLevel, ...]:
        """The 5 best bids (buy side), best first."""
        return _levels(self.depth, 0)

    @property
    def asks(self) -> tuple[DepthLevel, ...]:
        """The 5 best offers (sell side), best first."""
        return _levels(self.depth, 3 * DEPTH_LEVELS)

    @property
    def last_trade_at(self) -> datetime:
        return epoch_to_utc(self.last_trade_time)

    @property
    def exchange_at(self) -> datetime:
        return epoch_to_utc(self.exchange_timestamp)


DEPTH_LEVELS = 5


def _levels(depth: tuple[int, ...], first: int) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(depth[i], depth[i + 1], depth[i + 2])
        for i in range(first, first + 3 * DEPTH_LEVELS, 3)
    )


def depth_values(bids: Iterable[DepthLevel], asks: Iterable[DepthLevel]) -> tuple[int, ...]:
    """The `FullTick.depth` integers for these levels (5 of each side)."""
    return tuple(n for level in (*bids, *asks) for n in (level.quantity, level.price, level.orders))


Tick = LtpTick | IndexTick | QuoteTick | FullTick

_T = TypeVar("_T")


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A constructor for the frozen slotted dataclass `cls`, several times faster than `cls()`.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`,
    about 0.1 us a field; a full tick has 18. This builds an instance of a
    mutable twin with the same bases and slots (so the same memory layout),
    whose `__init__` uses plain slot stores, then gives it the real class.
    The result is an ordinary, frozen `cls` instance: equal, hashable and
    immutable like one made by `cls()`.
    """
    spec: list[tuple[str, Any, Any]] = [
        (f.name, f.type, field(default=f.default) if f.default is not MISSING else field())
        for f in fields(cls)  # type: ignore[arg-type]
    ]
    twin = make_dataclass(f"_{cls.__name__}Twin", spec, bases=cls.__bases__, slots=True, eq=False)
    if twin.__slots__ != cls.__slots__:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} cannot have a fast constructor: its slots differ")

    def build(*args: Any) -> _T:
        made = twin(*args)
        made.__class__ = cls
        return made  # type: ignore[no-any-return]

    build.__doc__ = f"Make a {cls.__name__} (see `fast_constructor`)."
    return build
