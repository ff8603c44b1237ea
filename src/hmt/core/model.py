"""The trigger record as the core sees it, and the order a fired leg asks for."""

from __future__ import annotations

from dataclasses import dataclass
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
    """What the trader asked for. Prices are wire units of the instrument's segment.

    Server-side results (order_id, attempts, triggered_*) live in the store's
    record, not here: the core decides, it does not remember outcomes.
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
