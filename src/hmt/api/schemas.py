"""The API's JSON: prices in rupees as decimals at the edge, wire units inside.

The trigger models spell out the v1 wire contract (names, types, limits) as
published in the OpenAPI schema; which fields they carry, which are prices,
which the server owns and how each maps to the core `Trigger` come from the
field specification (`hmt.core.fields`), and `tests/core/test_fields.py`
checks that the two agree. Prices convert with the trigger's own divisor.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from hmt.api.account_id import AccountId, stored_account
from hmt.api.legs import ConditionOut, LegOut, OrderOut, TrailConditionOut, WatchOut
from hmt.api.trails import TrailViews, trail_out
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.events import TriggerEvent
from hmt.core.fields import API_FIELDS, TRADER_FIELDS, TRADER_PRICES, Home, Owner
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal, to_units
from hmt.core.rules import direction
from hmt.core.types import (
    MAX_INSTRUMENT_ID,
    Exchange,
    Leg,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.engine.accounts import DEFAULT_ACCOUNT
from hmt.store.records import TriggerRecord

# Rupees with at most 7 decimals (CDS is the finest segment); never floats inside.
Price = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=7)]


class TriggerIn(BaseModel):
    """A new trigger. Prices in rupees, as numbers or strings ("1600.05")."""

    model_config = ConfigDict(extra="forbid")

    instrument_token: Annotated[int, Field(gt=0, lt=MAX_INSTRUMENT_ID)]
    exchange: Exchange
    tradingsymbol: Annotated[str, Field(min_length=1, max_length=64)]
    trigger_type: TriggerType
    transaction_type: Side
    trigger_price_1: Price
    trigger_price_2: Price | None = None
    quantity: Annotated[int, Field(ge=1, le=10_000_000)]
    product: Product
    order_type: OrderType = OrderType.MARKET
    limit_price_1: Price | None = None
    limit_price_2: Price | None = None
    expires_at: datetime | None = None
    # The linked account whose session places the orders (docs/accounts.md); absent,
    # null or "default": the default account.
    account: AccountId | None = None
    paused: bool = False

    def to_trigger(self, trigger_id: TriggerId, user_id: UserId, *, divisor: int) -> Trigger:
        """The core trigger, prices in wire units of `divisor` (the instrument master's)."""
        sent = {f.name: _core_value(f.price, getattr(self, f.api), divisor, f.api)
                for f in TRADER_FIELDS if f.api is not None}  # fmt: skip
        return Trigger(
            id=trigger_id,
            user_id=user_id,
            status=Status.PAUSED if self.paused else Status.ACTIVE,
            price_divisor=divisor,
            **sent,
        )


def _core_value(price: bool, value: Any, divisor: int, field: str) -> Any:
    """A sent value as `Trigger` holds it: prices to wire units, refused if not exact;
    the default account's id as None (its NULL)."""
    if price and value is not None:
        return to_units(value, divisor, field=field)
    return stored_account(value) if field == "account" else value


# Set only by hmt: a request naming one gets 422 with the rule `read_only`.
SERVER_OWNED = frozenset(
    {f.api for f in API_FIELDS if f.api is not None and f.owner is not Owner.TRADER}
    | {"warnings", "events"}
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
_PRICES = tuple(f.name for f in TRADER_PRICES)
# JSON name -> `Trigger` field, for what a trader sends.
_SENT = {f.api: f.name for f in TRADER_FIELDS if f.api is not None}


class TriggerPatch(BaseModel):
    """An edit of an active or paused trigger: only the fields sent change.

    Omitting a field keeps it; `null` clears one of the optional fields
    (trigger_price_2, limit prices, expires_at) and is refused for the others.
    Pausing and resuming are their own endpoints.
    """

    model_config = ConfigDict(extra="forbid")

    # `None` defaults mark "not sent"; the types refuse an explicit null.
    instrument_token: Annotated[int, Field(gt=0, lt=MAX_INSTRUMENT_ID)] = None  # type: ignore[assignment]
    exchange: Exchange = None  # type: ignore[assignment]
    tradingsymbol: Annotated[str, Field(min_length=1, max_length=64)] = None  # type: ignore[assignment]
    trigger_type: TriggerType = None  # type: ignore[assignment]
    transaction_type: Side = None  # type: ignore[assignment]
    trigger_price_1: Price = None  # type: ignore[assignment]
    trigger_price_2: Price | None = None
    quantity: Annotated[int, Field(ge=1, le=10_000_000)] = None  # type: ignore[assignment]
    product: Product = None  # type: ignore[assignment]
    order_type: OrderType = None  # type: ignore[assignment]
    limit_price_1: Price | None = None
    limit_price_2: Price | None = None
    expires_at: datetime | None = None
    account: AccountId | None = None  # null or "default": the default account

    def changes(self, current: Trigger, *, divisor: int) -> dict[str, Any]:
        """The sent fields as `Trigger` field values, prices in wire units of `divisor`.

        `divisor` is the edited trigger's instrument's (the instrument master's).
        Where it is not the unit `current` is stored in (an edit to another
        instrument), prices not sent keep their rupees in the new unit.
        """
        sent = self.model_fields_set
        if not sent:
            raise InvalidTrigger([FieldError("body", "not_empty", "send at least one field")])
        old = current.price_divisor
        out: dict[str, Any] = {}
        for api, name in _SENT.items():
            if api in sent:
                out[name] = _core_value(name in _PRICES, getattr(self, api), divisor, api)
            elif name in _PRICES and divisor != old and getattr(current, name) is not None:
                # Another instrument's unit: the same rupees, re-expressed.
                rupees = to_decimal(getattr(current, name), old)
                out[name] = to_units(rupees, divisor, field=name)
        if divisor != old:
            out["price_divisor"] = divisor
        return out


class BrokerSessionIn(BaseModel):
    """A Kite access token obtained elsewhere (e.g. with the official client)."""

    model_config = ConfigDict(extra="forbid")

    access_token: Annotated[SecretStr, Field(min_length=6, max_length=256)]

    @field_validator("access_token")
    @classmethod
    def _token_chars(cls, value: SecretStr) -> SecretStr:
        # It goes into an HTTP header and the ticker's URL: Kite's are alphanumeric.
        if not _TOKEN_CHARS.fullmatch(value.get_secret_value()):
            raise PydanticCustomError(
                "string_pattern_mismatch", "must be letters, digits or . _ ~ - only"
            )
        return value


class BrokerSessionOut(BaseModel):
    broker_session: str
    stored: bool


class EventOut(BaseModel):
    kind: str
    at: datetime
    payload: dict[str, Any]


class TriggerOut(BaseModel):
    """The record shape of DESIGN section 2."""

    id: str
    user_id: str
    instrument_token: int
    exchange: Exchange
    tradingsymbol: str
    trigger_type: TriggerType
    transaction_type: Side
    trigger_price_1: Decimal
    trigger_price_2: Decimal | None
    quantity: int
    product: Product
    order_type: OrderType
    limit_price_1: Decimal | None
    limit_price_2: Decimal | None
    status: Status
    triggered_leg: int | None
    triggered_price: Decimal | None
    triggered_at: datetime | None
    broker_tag: str | None
    order_id: str | None
    error_message: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    account: str  # "default" for the default account (NULL in the table)
    warnings: list[str] = []
    events: list[EventOut] | None = None

    @classmethod
    def of(
        cls,
        record: TriggerRecord,
        *,
        events: list[TriggerEvent] | None = None,
        warnings: list[str] | None = None,
    ) -> TriggerOut:
        return cls(**_v1_fields(record), **_extras(events, warnings))


def _v1_fields(record: TriggerRecord) -> dict[str, Any]:
    """DESIGN section 2's fields of a record, prices in rupees."""
    t = record.trigger
    divisor = t.price_divisor
    shown: dict[str, Any] = {}
    for f in API_FIELDS:
        value = getattr(t if f.home is Home.TRIGGER else record, f.name)
        if value is not None and f.price:
            value = to_decimal(value, divisor)
        elif isinstance(value, IntEnum):  # the leg: 1 or 2 on the wire
            value = int(value)
        shown[str(f.api)] = value
    shown["account"] = t.account or DEFAULT_ACCOUNT
    return shown


def _extras(events: list[TriggerEvent] | None, warnings: list[str] | None) -> dict[str, Any]:
    return {
        "warnings": warnings or [],
        "events": None
        if events is None
        else [EventOut(kind=e.kind.value, at=e.at, payload=dict(e.payload)) for e in events],
    }


class TriggerRecordOut(TriggerOut):
    """The record every route returns: DESIGN section 2's fields, then the v2 model's.

    A v1 client reads the v1 fields as before; a v2 trigger fills them from its
    first leg's first order, and a time leg's trigger price is null. `legs`
    shows every trigger, v1 ones too, leg by leg with each order's state.
    """

    trigger_price_1: Decimal | None  # type: ignore[assignment]  # null for a time leg
    watch: WatchOut
    legs: list[LegOut]
    not_before: datetime | None
    on_gap: OnGap

    @classmethod
    def of(
        cls,
        record: TriggerRecord,
        *,
        events: list[TriggerEvent] | None = None,
        warnings: list[str] | None = None,
        trails: TrailViews | None = None,
    ) -> TriggerRecordOut:
        t = record.trigger
        watch = watched(record)
        legs = [_leg_out(record, leg, watch.price_divisor, trails) for leg in t.legs]
        shown = _v1_fields(record)
        # Thresholds are in the watched instrument's unit; a time leg's is null.
        for leg, out in zip(t.legs, legs, strict=True):
            shown[f"trigger_price_{int(leg)}"] = out.condition.price
        if record.triggered_price is not None:
            shown["triggered_price"] = to_decimal(record.triggered_price, watch.price_divisor)
        return cls(
            **shown,
            **_extras(events, warnings),
            watch=WatchOut(
                instrument_token=watch.id,
                exchange=watch.exchange,
                tradingsymbol=watch.tradingsymbol,
            ),
            legs=legs,
            not_before=t.not_before,
            on_gap=t.on_gap,
        )


def watched(record: TriggerRecord) -> Instrument:
    """The instrument a record's legs watch, as far as the record knows it (tick and lot 0)."""
    t = record.trigger
    if t.watch_token is None:
        return Instrument(t.instrument_token, t.exchange, t.tradingsymbol, t.price_divisor, 0, 0)
    # The store reads a row without the master's name (another tool's) with the
    # broker's divisor rule; the name then stays the one the row has, or none.
    return Instrument(
        t.watch_token,
        record.watch_exchange or t.exchange,
        record.watch_tradingsymbol or "",
        record.watch_price_divisor or t.price_divisor,
        0,
        0,
    )


def _leg_out(
    record: TriggerRecord, leg: Leg, watch_divisor: int, trails: TrailViews | None
) -> LegOut:
    t = record.trigger
    at = t.fire_at(leg)
    trail = t.trail(leg)
    price = (
        None if at is not None or trail is not None else to_decimal(t.threshold(leg), watch_divisor)
    )
    specs = t.orders(leg)
    states = {s.position: s for s in record.orders if s.leg == leg}
    fired = record.triggered_leg == leg
    orders = []
    for position, o in enumerate(specs):
        state: dict[str, Any] = {"tag": None, "status": None, "order_id": None,
                                 "error_message": None, "attempts": 0}  # fmt: skip
        if len(specs) == 1 and fired:  # a leg of one order: the row's own v1 fields
            state = {
                "tag": record.broker_tag,
                "status": _ONE_ORDER.get(t.status, "pending"),
                "order_id": record.order_id,
                "error_message": record.error_message,
                "attempts": record.attempts,
            }
        elif position in states:
            s = states[position]
            state = {"tag": s.tag, "status": s.status, "order_id": s.order_id,
                     "error_message": s.error_message, "attempts": s.attempts}  # fmt: skip
        elif fired:
            state["status"] = "pending"
        orders.append(
            OrderOut(
                instrument_token=o.instrument_token,
                exchange=o.exchange,
                tradingsymbol=o.tradingsymbol,
                transaction_type=o.side,
                quantity=o.quantity,
                product=o.product,
                order_type=o.order_type,
                price=None if o.price is None else to_decimal(o.price, o.price_divisor),
                trigger_price=None
                if o.trigger_price is None
                else to_decimal(o.trigger_price, o.price_divisor),
                validity=o.validity,
                **state,
            )
        )
    condition = ConditionOut(price=price, direction=None if at else direction(t, leg), at=at)
    if trail is not None:
        now, live, written_at = (trails or {}).get(int(leg), (None, False, None))
        condition = TrailConditionOut(
            **condition.model_dump(),
            trail=trail_out(trail, watch_divisor, now, live=live, written_at=written_at),
        )
    return LegOut(condition=condition, orders=orders)


# A fired leg of one order: its state is the trigger's.
_ONE_ORDER = {Status.PLACED: "placed", Status.FAILED: "failed"}


class FieldProblem(BaseModel):
    field: str
    rule: str
    message: str


class Problem(BaseModel):
    """Every 4xx body: what was wrong, and for bad input, each field and rule."""

    detail: str
    errors: list[FieldProblem] = []
