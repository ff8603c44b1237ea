"""The v2 trigger's JSON (docs/api.md "Trigger model v2"): a watched instrument, legs, baskets.

A v2 body is told from a v1 body by its `legs`. Prices are rupees at the edge:
a condition's in the watched instrument's unit, an order's in its own
instrument's. The core `Trigger` of a v2 body mirrors its first leg's first
order in the v1 fields (the list's instrument filter and the v1 record read
them) and holds every leg in `leg_specs`, each order listed explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from hmt.api.account_id import AccountId, stored_account
from hmt.api.trails import TrailIn, TrailOut, to_trail
from hmt.api.trails import as_json as trail_json
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec, OrderSpec, Trigger
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import (
    MAX_BASKET,
    MAX_INSTRUMENT_ID,
    Direction,
    Exchange,
    InstrumentToken,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
    Validity,
)

Price = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=7)]
Token = Annotated[int, Field(gt=0, lt=MAX_INSTRUMENT_ID)]
Symbol = Annotated[str, Field(min_length=1, max_length=64)]
Quantity = Annotated[int, Field(ge=1, le=10_000_000)]
# The keys only a v2 body has: one of them makes a body v2 (`legs` for a create).
V2_KEYS = frozenset({"legs", "watch", "not_before", "on_gap"})


class InstrumentIn(BaseModel):
    """An instrument as the master lists it (the watched one may be an index)."""

    model_config = ConfigDict(extra="forbid")

    instrument_token: Token
    exchange: Exchange
    tradingsymbol: Symbol


class ConditionIn(BaseModel):
    """A price on the watched instrument with its direction, a time (`at`, with a zone),
    or a trailing stop (`trail`, docs/api.md "Trailing stops")."""

    model_config = ConfigDict(extra="forbid")

    price: Price | None = None
    direction: Direction | None = None
    at: datetime | None = None
    trail: TrailIn | None = None


class OrderIn(InstrumentIn):
    """One order of a leg's basket; `price` for LIMIT and SL, `trigger_price` for SL and SL-M."""

    transaction_type: Side
    quantity: Quantity
    product: Product
    order_type: OrderType = OrderType.MARKET
    price: Price | None = None
    trigger_price: Price | None = None
    validity: Validity = Validity.DAY


class LegIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    condition: ConditionIn
    orders: Annotated[list[OrderIn], Field(min_length=1, max_length=MAX_BASKET)]


class TriggerV2In(BaseModel):
    """A v2 trigger: one leg (single) or two (oco), each a condition and 1 to 20 orders."""

    model_config = ConfigDict(extra="forbid")

    watch: InstrumentIn | None = None
    trigger_type: TriggerType
    legs: Annotated[list[LegIn], Field(min_length=1, max_length=2)]
    expires_at: datetime | None = None
    not_before: datetime | None = None
    on_gap: OnGap = OnGap.FIRE
    # The linked account whose session places the orders (docs/accounts.md); absent,
    # null or "default": the default account.
    account: AccountId | None = None
    paused: bool = False

    def tokens(self) -> list[tuple[str, InstrumentIn]]:
        """Each instrument the body names, with the field prefix its errors take."""
        named: list[tuple[str, InstrumentIn]] = []
        if self.watch is not None:
            named.append(("watch.", self.watch))
        for i, leg in enumerate(self.legs):
            named += [(f"legs[{i}].orders[{k}].", o) for k, o in enumerate(leg.orders)]
        return named

    def to_trigger(
        self,
        trigger_id: TriggerId,
        user_id: UserId,
        *,
        instruments: Mapping[int, Instrument],
        status: Status | None = None,
    ) -> Trigger:
        """The core trigger, every price in wire units of its own instrument (the master's
        entries in `instruments`, by id); `InvalidTrigger` names every inexact price."""
        errors: list[FieldError] = []

        def units(value: Decimal | None, divisor: int, field: str) -> int | None:
            if value is None:
                return None
            try:
                return to_units(value, divisor, field=field)
            except InvalidTrigger as error:
                errors.extend(error.errors)
                return 0

        first = self.legs[0].orders[0]
        watched = first if self.watch is None else self.watch
        watch_divisor = instruments[watched.instrument_token].price_divisor
        specs, thresholds = [], []
        for i, leg in enumerate(self.legs):
            orders = []
            for k, o in enumerate(leg.orders):
                divisor, at = (
                    instruments[o.instrument_token].price_divisor,
                    f"legs[{i}].orders[{k}]",
                )
                orders.append(
                    OrderSpec(
                        instrument_token=InstrumentToken(o.instrument_token),
                        exchange=o.exchange,
                        tradingsymbol=o.tradingsymbol,
                        side=o.transaction_type,
                        quantity=o.quantity,
                        product=o.product,
                        order_type=o.order_type,
                        price=units(o.price, divisor, f"{at}.price"),
                        trigger_price=units(o.trigger_price, divisor, f"{at}.trigger_price"),
                        validity=o.validity,
                        price_divisor=divisor,
                    )
                )
            c = leg.condition
            thresholds.append(units(c.price, watch_divisor, f"legs[{i}].condition.price") or 0)
            if c.price is None and c.at is None and c.trail is None:
                errors.append(
                    FieldError(
                        f"legs[{i}].condition",
                        "one_condition",
                        "send a price, a time (at) or a trail",
                    )
                )
            trail = None
            if c.trail is not None:
                trail = to_trail(
                    c.trail,
                    f"legs[{i}].condition.trail",
                    stated=c.direction,
                    order_side=leg.orders[0].transaction_type,
                    watched=instruments[watched.instrument_token],
                    errors=errors,
                )
            specs.append(LegSpec(direction=c.direction, at=c.at, orders=tuple(orders), trail=trail))
        if errors:
            raise InvalidTrigger(errors)
        head = specs[0].orders[0]
        second = specs[1].orders[0] if len(specs) > 1 else None
        return Trigger(
            id=trigger_id,
            user_id=user_id,
            instrument_token=head.instrument_token,
            exchange=head.exchange,
            tradingsymbol=head.tradingsymbol,
            trigger_type=self.trigger_type,
            side=head.side,
            trigger_price_1=thresholds[0],
            trigger_price_2=thresholds[1] if len(thresholds) > 1 else None,
            quantity=head.quantity,
            product=head.product,
            order_type=head.order_type,
            limit_price_1=head.price,
            limit_price_2=None if second is None else second.price,
            status=status or (Status.PAUSED if self.paused else Status.ACTIVE),
            expires_at=self.expires_at,
            price_divisor=head.price_divisor,
            watch_token=None
            if self.watch is None
            else InstrumentToken(self.watch.instrument_token),
            leg_specs=tuple(specs),
            not_before=self.not_before,
            on_gap=self.on_gap,
            account=stored_account(self.account),
        )


class LegPatch(BaseModel):
    """A leg's edit: a sent condition or order list replaces the old one as a whole."""

    model_config = ConfigDict(extra="forbid")

    condition: ConditionIn = None  # type: ignore[assignment]
    orders: Annotated[list[OrderIn], Field(min_length=1, max_length=MAX_BASKET)] = None  # type: ignore[assignment]


class TriggerV2Patch(BaseModel):
    """An edit in v2 terms: only the fields sent change.

    `legs` lists the legs the trigger will have, by position: `{}` keeps a leg
    as it is, and legs past the list are dropped (an oco made single sends one).
    `null` clears `watch` (the first order's instrument is watched again),
    `expires_at` and `not_before`; `account` null or "default" is the default account.
    """

    model_config = ConfigDict(extra="forbid")

    watch: InstrumentIn | None = None
    trigger_type: TriggerType = None  # type: ignore[assignment]
    legs: Annotated[list[LegPatch], Field(min_length=1, max_length=2)] = None  # type: ignore[assignment]
    expires_at: datetime | None = None
    not_before: datetime | None = None
    on_gap: OnGap = None  # type: ignore[assignment]
    account: AccountId | None = None  # not sent: the trigger's is kept

    def applied(self, current: dict[str, Any]) -> dict[str, Any]:
        """`current` (a v2 body, as `as_body` gives it) with this edit applied."""
        sent = self.model_fields_set
        if not sent:
            raise InvalidTrigger([FieldError("body", "not_empty", "send at least one field")])
        body = dict(current)
        for name in sent - {"legs"}:
            value = getattr(self, name)
            body[name] = value.model_dump() if isinstance(value, BaseModel) else value
        if "legs" in sent:
            legs = []
            for i, patch in enumerate(self.legs):
                leg = dict(current["legs"][i]) if i < len(current["legs"]) else {}
                for part in patch.model_fields_set:
                    value = getattr(patch, part)
                    leg[part] = (
                        value.model_dump(exclude_unset=True)
                        if isinstance(value, BaseModel)
                        else [o.model_dump() for o in value]
                    )
                legs.append(leg)
            body["legs"] = legs
        return body


def as_body(trigger: Trigger, watch: Instrument | None) -> dict[str, Any]:
    """A stored trigger as the v2 body that would create it (the base an edit applies to).

    `watch` is its watched instrument when that is not the first order's. A v1
    trigger reads as its v2 equivalent (its one order per leg, directions from
    DESIGN's table left unstated), so a v2 edit may change it too.
    """
    watch_divisor = trigger.price_divisor if watch is None else watch.price_divisor
    legs = []
    for leg in trigger.legs:
        spec = trigger.spec(leg)
        at = None if spec is None else spec.at
        trail = None if spec is None else spec.trail
        threshold = trigger.threshold(leg) if at is None else None
        orders = [
            {
                "instrument_token": o.instrument_token,
                "exchange": o.exchange,
                "tradingsymbol": o.tradingsymbol,
                "transaction_type": o.side,
                "quantity": o.quantity,
                "product": o.product,
                "order_type": o.order_type,
                "price": _rupees(o.price, o.price_divisor),
                "trigger_price": _rupees(o.trigger_price, o.price_divisor),
                "validity": o.validity,
            }
            for o in trigger.orders(leg)
        ]
        condition: dict[str, Any] = {"at": at} if at is not None else {
            "price": _rupees(threshold, watch_divisor)
        }  # fmt: skip
        if trail is not None:
            condition = {"trail": trail_json(trail, watch_divisor)}
        if spec is not None and spec.direction is not None:
            condition["direction"] = spec.direction
        legs.append({"condition": condition, "orders": orders})
    return {
        "watch": None
        if watch is None
        else {
            "instrument_token": watch.id,
            "exchange": watch.exchange,
            "tradingsymbol": watch.tradingsymbol,
        },
        "trigger_type": trigger.trigger_type,
        "legs": legs,
        "expires_at": trigger.expires_at,
        "not_before": trigger.not_before,
        "on_gap": trigger.on_gap,
        "account": trigger.account,
    }


def _rupees(units: int | None, divisor: int) -> Decimal | None:
    return None if units is None else to_decimal(units, divisor)


class WatchOut(BaseModel):
    """The instrument whose price the legs watch (the first order's unless another was sent)."""

    instrument_token: int
    exchange: Exchange
    tradingsymbol: str


class ConditionOut(BaseModel):
    """A price leg's price and direction (the stated one, else DESIGN's table's), or its time."""

    price: Decimal | None
    direction: Direction | None
    at: datetime | None


class OrderOut(BaseModel):
    """One order of a leg with its state: `status` is null until the leg fires, then
    pending, placed or failed."""

    instrument_token: int
    exchange: Exchange
    tradingsymbol: str
    transaction_type: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Decimal | None
    trigger_price: Decimal | None
    validity: Validity
    tag: str | None
    status: str | None
    order_id: str | None
    error_message: str | None
    attempts: int


class TrailConditionOut(ConditionOut):
    """A trailing leg's condition: its price is null, its terms and state in `trail`
    (other legs' conditions have no `trail` key: they read exactly as before)."""

    trail: TrailOut


class LegOut(BaseModel):
    condition: TrailConditionOut | ConditionOut
    orders: list[OrderOut]
