"""The trigger record as the core sees it, and the order a fired leg asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from hmt.core.lifecycle import Status
from hmt.core.trailing import Trail
from hmt.core.types import (
    Cause,
    Direction,
    Exchange,
    InstrumentToken,
    Leg,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
    Validity,
)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One order of a leg's basket, in integer wire units of its own instrument.

    `price` is the limit price (LIMIT, SL); `trigger_price` the broker-side
    stop (SL, SL-M). MARKET and SL-M orders get `market_protection` from the
    broker adapter, as v1's MARKET orders do.
    """

    instrument_token: InstrumentToken
    exchange: Exchange
    tradingsymbol: str
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: int | None = None
    trigger_price: int | None = None
    validity: Validity = Validity.DAY
    price_divisor: int = 100


@dataclass(frozen=True, slots=True)
class LegSpec:
    """What trigger model v2 adds to a leg (docs/triggers.md).

    `direction`: None takes DESIGN's table (v1 shapes); stated when the watched
    instrument is not the traded one. `at`: a time condition (timezone-aware);
    the leg then has no price and its threshold in `Trigger` is 0 (NULL in the
    table). `orders`: the leg's basket in listed order; empty means the one v1
    order made from the trigger's own fields. `trail`: a trailing stop (issue
    14); the leg then has no fixed price either (its threshold is 0 in the
    core) and fires in the trail's direction. None: every v2 leg as before.
    """

    direction: Direction | None = None
    at: datetime | None = None
    orders: tuple[OrderSpec, ...] = ()
    trail: Trail | None = None


@dataclass(frozen=True, slots=True)
class Trigger:
    """What the trader asked for. Prices are integer wire units of the instrument.

    `price_divisor` is the instrument's wire units per rupee (from the broker's
    instrument master): the edges convert with it, the core never needs it and
    never derives it from the instrument's id. Its default, 100 (paise), is the
    unit of every cash, F&O and commodity segment and the fallback of every
    official Kite client; it lets tests and in-core code build triggers whose
    units are never shown in rupees. Every path that converts (the API, the
    store, the order form) sets or reads it explicitly, so a currency trigger
    (10^7 or 10^4) is never converted with the default.

    Server-side results (order_id, attempts, triggered_*) live in the store's
    record, not here: the core decides, it does not remember outcomes. The
    fields are specified in `hmt.core.fields`.
    """

    id: TriggerId
    user_id: UserId
    instrument_token: InstrumentToken
    exchange: Exchange
    tradingsymbol: str
    trigger_type: TriggerType
    side: Side
    trigger_price_1: int
    trigger_price_2: int | None
    quantity: int
    product: Product
    order_type: OrderType
    limit_price_1: int | None = None
    limit_price_2: int | None = None
    status: Status = Status.ACTIVE
    expires_at: datetime | None = None
    price_divisor: int = field(default=100, kw_only=True)
    # Trigger model v2 (docs/triggers.md). Defaults are the v1 shape exactly.
    watch_token: InstrumentToken | None = field(default=None, kw_only=True)  # None: traded
    leg_specs: tuple[LegSpec, ...] = field(default=(), kw_only=True)  # () or one per leg
    not_before: datetime | None = field(default=None, kw_only=True)
    on_gap: OnGap = field(default=OnGap.FIRE, kw_only=True)
    # The account whose session places the orders (docs/accounts.md); None: the default.
    account: str | None = field(default=None, kw_only=True)

    @property
    def legs(self) -> tuple[Leg, ...]:
        return (Leg.FIRST,) if self.trigger_type is TriggerType.SINGLE else (Leg.FIRST, Leg.SECOND)

    @property
    def watched(self) -> InstrumentToken:
        """The instrument whose price the legs watch (by default the traded one)."""
        return self.instrument_token if self.watch_token is None else self.watch_token

    def spec(self, leg: Leg) -> LegSpec | None:
        """The v2 part of `leg`, or None for a v1-shaped trigger."""
        return self.leg_specs[leg - 1] if self.leg_specs else None

    def fire_at(self, leg: Leg) -> datetime | None:
        """The time `leg` fires at, if it is a time condition."""
        spec = self.spec(leg)
        return None if spec is None else spec.at

    def trail(self, leg: Leg) -> Trail | None:
        """The trailing stop `leg` is, if it is one."""
        spec = self.spec(leg)
        return None if spec is None else spec.trail

    def orders(self, leg: Leg) -> tuple[OrderSpec, ...]:
        """The orders `leg` places, in listed order: its basket, or the v1 order."""
        spec = self.spec(leg)
        if spec is not None and spec.orders:
            return spec.orders
        limit = self.limit_price_1 if leg is Leg.FIRST else self.limit_price_2
        return (
            OrderSpec(
                instrument_token=self.instrument_token,
                exchange=self.exchange,
                tradingsymbol=self.tradingsymbol,
                side=self.side,
                quantity=self.quantity,
                product=self.product,
                order_type=self.order_type,
                price=limit,
                price_divisor=self.price_divisor,
            ),
        )

    @property
    def is_v1(self) -> bool:
        """Whether DESIGN section 2's record says everything about it."""
        return (
            self.watch_token is None
            and not self.leg_specs
            and self.not_before is None
            and self.on_gap is OnGap.FIRE
        )

    def threshold(self, leg: Leg) -> int:
        """The trigger price of `leg`."""
        if leg is Leg.FIRST:
            return self.trigger_price_1
        if self.trigger_price_2 is None:
            raise ValueError(f"trigger {self.id} has no second leg")
        return self.trigger_price_2


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """The order a fired leg places: what the executor sends, in wire units."""

    trigger_id: TriggerId
    leg: Leg
    tag: str
    instrument_token: InstrumentToken
    exchange: Exchange
    tradingsymbol: str
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    limit_price: int | None
    price_divisor: int  # the order's instrument's: the order form states prices in rupees
    # v2: where this order sits in its leg's basket, and the basket's size.
    position: int = field(default=0, kw_only=True)
    basket: int = field(default=1, kw_only=True)
    trigger_price: int | None = field(default=None, kw_only=True)  # SL, SL-M
    validity: Validity = field(default=Validity.DAY, kw_only=True)
    account: str | None = field(default=None, kw_only=True)  # the trigger's; None: default


class Fired(NamedTuple):
    """One leg that fired on a tick, with the price that fired it.

    A named tuple, not a dataclass: the book makes one per fired leg on the
    tick path, and a tuple is several times cheaper to build.
    """

    trigger: Trigger
    leg: Leg
    ltp: int  # the watched instrument's price that fired it; 0 if unknown (a time leg)
    cause: Cause = Cause.PRICE


@dataclass(frozen=True, slots=True)
class InFlight:
    """A trigger left `triggered`: claimed, its order's fate not yet recorded."""

    intent: OrderIntent
    triggered_at: datetime | None
    # A basket (v2): every order of the fired leg not yet settled, in listed
    # order, `intent` first. Empty for a leg of one order.
    basket: tuple[OrderIntent, ...] = ()
