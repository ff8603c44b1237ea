"""The trigger record as the core sees it, and the order a fired leg asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from hmt.core.lifecycle import Status
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)


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

    @property
    def legs(self) -> tuple[Leg, ...]:
        return (Leg.FIRST,) if self.trigger_type is TriggerType.SINGLE else (Leg.FIRST, Leg.SECOND)

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
    price_divisor: int  # the trigger's: the order form states prices in rupees


class Fired(NamedTuple):
    """One leg that fired on a tick, with the price that fired it.

    A named tuple, not a dataclass: the book makes one per fired leg on the
    tick path, and a tuple is several times cheaper to build.
    """

    trigger: Trigger
    leg: Leg
    ltp: int


@dataclass(frozen=True, slots=True)
class InFlight:
    """A trigger left `triggered`: claimed, its order's fate not yet recorded."""

    intent: OrderIntent
    triggered_at: datetime | None
