"""Rows of `hmt_gtt_orders` as core objects: rupees in the table, wire units in the core.

Which column holds which field, and how it converts, comes from the field
specification (`hmt.core.fields`); nothing here lists the fields again.

Each row's prices are read with the row's own `price_divisor`. A row another
tool wrote without one (NULL) is read with the `divisor_of` fallback the
composition hands the store (Kite's segment rule); without a fallback such a
row is refused, naming `price_divisor` (docs/store.md). The store itself never
decodes an instrument id.

Trigger model v2 (docs/store.md): the thresholds (`trigger_price_N`) and the
`triggered_price` are the watched instrument's prices, read with its
`watch_price_divisor` when the row watches another instrument; a time leg's
threshold is NULL in the table and 0 in the core; `legs` (JSON, `store.legs`)
carries each order's own divisor. A basket's per-order state is in
`hmt_trigger_orders` (`OrderState`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.fields import (
    BY_NAME,
    RECORD_FIELDS,
    TRADER_FIELDS,
    TRADER_PRICES,
    TRIGGER_FIELDS,
    TriggerField,
)
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import Exchange, Leg, OnGap, TriggerId, TriggerType
from hmt.store import legs

# A broker's rule for an instrument's divisor, for rows stored without one.
DivisorOf = Callable[[int], int]

PRICE_FIELDS = tuple(f.column for f in TRADER_PRICES)
_ON_GAP = BY_NAME["on_gap"]
# The columns a trader owns; everything else is written only by the server.
USER_FIELDS = tuple(f.column for f in TRADER_FIELDS)
# The legs' price thresholds: in the watched instrument's units (v2).
THRESHOLDS = ("trigger_price_1", "trigger_price_2")
# Converted by hand below, not by `from_column`/`to_column`.
_OWN_WAY = frozenset({*THRESHOLDS, "price_divisor", "legs", "on_gap", "triggered_price"})
WATCH_COLUMNS = ("watch_exchange", "watch_tradingsymbol", "watch_price_divisor")
# Revision 0003's columns: a mapping without them (a v1 query's) reads as v1.
V2_COLUMNS = frozenset({"watch_token", *WATCH_COLUMNS, "legs", "not_before", "on_gap"})


# Read as NULL where a mapping lacks them: v2's columns, and the account (revision 0011).
_OPTIONAL = V2_COLUMNS | {"account"}


def _value(row: Mapping[Any, Any], column: str) -> Any:
    return row.get(column) if column in _OPTIONAL else row[column]


@dataclass(frozen=True, slots=True)
class OrderState:
    """One order of a basket as `hmt_trigger_orders` holds it (docs/store.md).

    A row is written at the first write for that order (its `order_sent`, or an
    outcome found first): an order of a fired basket with no row was not sent.
    """

    leg: Leg
    position: int  # 0-based, in the leg's listed order
    tag: str
    status: str  # 'pending' | 'placed' | 'failed' (tables.ORDER_STATUSES)
    order_id: str | None
    error_message: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class TriggerRecord:
    """A stored trigger: what the trader asked for plus what the server did with it."""

    trigger: Trigger
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    triggered_leg: Leg | None = None
    triggered_price: int | None = None  # wire units, like every core price
    triggered_at: datetime | None = None
    broker_tag: str | None = None
    order_id: str | None = None
    error_message: str | None = None
    # The instrument's grid when it was known at create or edit (wire units; None if not).
    tick_size: int | None = None
    lot_size: int | None = None
    # The claim's engine and lease expiry while `triggered` (docs/engine.md).
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None
    # The watched instrument as the master named it, and its divisor (the
    # thresholds' unit); None when the trigger watches what it trades.
    watch_exchange: Exchange | None = None
    watch_tradingsymbol: str | None = None
    watch_price_divisor: int | None = None
    # A basket's orders (legs of more than one order), by leg and position; empty
    # for one-order legs, whose state is the fields above as in v1.
    orders: tuple[OrderState, ...] = ()

    @property
    def id(self) -> TriggerId:
        return self.trigger.id

    @property
    def status(self) -> Status:
        return self.trigger.status


def row_divisor(row: Mapping[Any, Any], divisor_of: DivisorOf | None) -> int:
    """The divisor of a row's prices: its own, else the fallback's, else refused."""
    divisor = row["price_divisor"]
    if divisor is None and divisor_of is not None:
        divisor = divisor_of(int(row["instrument_token"]))
    if divisor is None:
        raise InvalidTrigger(
            [FieldError("price_divisor", "required", "is NULL and no broker rule is configured")]
        )
    if int(divisor) <= 0:
        raise InvalidTrigger([FieldError("price_divisor", "positive", "must be greater than 0")])
    return int(divisor)


def from_column(spec: TriggerField, value: Any, divisor: int) -> Any:
    """A column's value as the core holds it; `InvalidTrigger` names the column."""
    if value is None:
        if not spec.nullable:
            raise InvalidTrigger([FieldError(spec.column, "required", "is NULL")])
        return None
    if spec.price:
        return to_units(value, divisor, field=spec.column)
    if spec.is_enum:
        try:
            return spec.type(value)
        except ValueError:
            raise InvalidTrigger(
                [FieldError(spec.column, "enum", f"{value!r} is not a {spec.type.__name__}")]
            ) from None
    if spec.type is int or spec.type is str:
        return spec.type(value)  # ids are uuids on PostgreSQL, text on SQLite
    return value


def to_column(spec: TriggerField, value: Any, divisor: int) -> Any:
    """A core value as the table stores it (prices as exact decimal rupees)."""
    if value is None:
        return None
    if spec.price:
        return to_decimal(value, divisor)
    if spec.is_enum:
        return value.value
    return value


def watch_divisor(row: Mapping[Any, Any], divisor: int, divisor_of: DivisorOf | None) -> int:
    """The divisor of a row's thresholds: the watched instrument's, else the trigger's own.

    A row watching another instrument without its divisor (another tool's) is read
    with the broker's rule, as a NULL `price_divisor` is, else refused naming it.
    """
    token = row.get("watch_token")
    if token is None:
        return divisor
    watched = row.get("watch_price_divisor")
    if watched is None and divisor_of is not None:
        watched = divisor_of(int(token))
    if watched is None:
        raise InvalidTrigger(
            [FieldError("watch_price_divisor", "required", "is NULL and no broker rule is set")]
        )
    if int(watched) <= 0:
        raise InvalidTrigger(
            [FieldError("watch_price_divisor", "positive", "must be greater than 0")]
        )
    return int(watched)


def trigger_from_row(row: Mapping[Any, Any], divisor_of: DivisorOf | None = None) -> Trigger:
    """The core `Trigger` of a row; `InvalidTrigger` names a value the core cannot hold."""
    divisor = row_divisor(row, divisor_of)
    values = {
        f.name: from_column(f, _value(row, f.column), divisor)
        for f in TRIGGER_FIELDS
        if f.column not in _OWN_WAY
    }
    specs = legs.from_json(row.get("legs"))
    wanted = 1 if values["trigger_type"] is TriggerType.SINGLE else 2
    if specs and len(specs) != wanted:
        message = f"has {len(specs)} legs: a {values['trigger_type']} trigger has {wanted}"
        raise InvalidTrigger([FieldError("legs", "count", message)])
    watched = watch_divisor(row, divisor, divisor_of)
    for leg, column in enumerate(THRESHOLDS):
        timed = leg < len(specs) and (specs[leg].at is not None or specs[leg].trail is not None)
        values[column] = _threshold(row[column], column, watched, timed=timed)
    on_gap = row.get("on_gap")
    values["on_gap"] = OnGap.FIRE if on_gap is None else from_column(_ON_GAP, on_gap, divisor)
    values["leg_specs"] = specs
    values["price_divisor"] = divisor
    return Trigger(**values)


def _threshold(value: Any, column: str, divisor: int, *, timed: bool) -> int | None:
    """A leg's threshold: NULL for a time leg (0 in the core), else required for leg 1."""
    if timed:
        if value is not None:
            raise InvalidTrigger([FieldError(column, "time_leg", "must be NULL for a time leg")])
        return 0
    if value is None:
        if column == THRESHOLDS[0]:
            raise InvalidTrigger([FieldError(column, "required", "is NULL")])
        return None
    return to_units(value, divisor, field=column)


def record_from_row(
    row: Mapping[Any, Any],
    divisor_of: DivisorOf | None = None,
    orders: tuple[OrderState, ...] = (),
) -> TriggerRecord:
    """The record of a row; `orders` are its basket's rows (`store.orders`)."""
    trigger = trigger_from_row(row, divisor_of)
    divisor = trigger.price_divisor
    values = {
        f.name: from_column(f, _value(row, f.column), divisor)
        for f in RECORD_FIELDS
        if f.column not in _OWN_WAY
    }
    ltp = row["triggered_price"]
    values["triggered_price"] = (
        None
        if ltp is None
        else to_units(ltp, watch_divisor(row, divisor, divisor_of), field="triggered_price")
    )
    return TriggerRecord(trigger=trigger, orders=orders, **values)


def has_basket(trigger: Trigger) -> bool:
    """Whether a leg of `trigger` places more than one order (its state has rows)."""
    return any(len(spec.orders) > 1 for spec in trigger.leg_specs)


def rupees(units: int | None, price_divisor: int) -> Decimal | None:
    """Wire units to the exact decimal rupees the table stores."""
    return None if units is None else to_decimal(units, price_divisor)


def user_columns(trigger: Trigger, watch_price_divisor: int | None = None) -> dict[str, Any]:
    """The columns a trader owns, as the table stores them, with the divisor of their prices.

    The divisor is written whenever the prices are: rupees written without the
    divisor they were computed with could be read back with another one. A
    trigger watching another instrument needs that instrument's divisor
    (`watch_price_divisor`) for its thresholds; a time leg's threshold is NULL.
    """
    divisor = trigger.price_divisor
    watched = divisor
    if trigger.watch_token is not None:
        if watch_price_divisor is None:
            raise ValueError(f"trigger {trigger.id} watches {trigger.watch_token}: its divisor?")
        watched = watch_price_divisor
    columns = {
        f.column: to_column(f, getattr(trigger, f.name), divisor)
        for f in TRADER_FIELDS
        if f.column not in _OWN_WAY
    }
    specs = trigger.leg_specs
    for leg, column in enumerate(THRESHOLDS):
        timed = leg < len(specs) and (specs[leg].at is not None or specs[leg].trail is not None)
        columns[column] = None if timed else rupees(getattr(trigger, column), watched)
    columns["legs"] = legs.to_json(trigger.leg_specs, watched)
    # NULL is fire: a v1 trigger's row stays exactly as v1 wrote it.
    columns["on_gap"] = None if trigger.is_v1 else trigger.on_gap.value
    columns["price_divisor"] = divisor
    return {column: columns[column] for column in (*USER_FIELDS, "price_divisor")}


def watch_columns(instrument: Instrument | None) -> dict[str, Any]:
    """The watched instrument's name and divisor as the row keeps them (None: NULL)."""
    if instrument is None:
        return dict.fromkeys(WATCH_COLUMNS)
    return {
        "watch_exchange": instrument.exchange.value,
        "watch_tradingsymbol": instrument.tradingsymbol,
        "watch_price_divisor": instrument.price_divisor,
    }


def instrument_columns(instrument: Instrument | None) -> dict[str, Any]:
    """An instrument's units as the row keeps them (tick size in rupees, like the prices).

    None, or a tick or lot size of 0 (unknown: the master could not be asked),
    is NULL. The divisor is not among them: it is the trigger's, written with its
    prices (`user_columns`), and validation holds it equal to the instrument's.
    """
    if instrument is None:
        return {"tick_size": None, "lot_size": None}
    tick, lot = instrument.tick_size, instrument.lot_size
    return {
        "tick_size": rupees(tick, instrument.price_divisor) if tick > 0 else None,
        "lot_size": lot if lot > 0 else None,
    }
