"""Rows of `hmt_gtt_orders` as core objects: rupees in the table, wire units in the core.

Which column holds which field, and how it converts, comes from the field
specification (`hmt.core.fields`); nothing here lists the fields again.

Each row's prices are read with the row's own `price_divisor`. A row another
tool wrote without one (NULL) is read with the `divisor_of` fallback the
composition hands the store (Kite's segment rule); without a fallback such a
row is refused, naming `price_divisor` (docs/store.md). The store itself never
decodes an instrument id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.fields import (
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
from hmt.core.types import Leg, TriggerId

# A broker's rule for an instrument's divisor, for rows stored without one.
DivisorOf = Callable[[int], int]

PRICE_FIELDS = tuple(f.column for f in TRADER_PRICES)
# The columns a trader owns; everything else is written only by the server.
USER_FIELDS = tuple(f.column for f in TRADER_FIELDS)


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


def trigger_from_row(row: Mapping[Any, Any], divisor_of: DivisorOf | None = None) -> Trigger:
    """The core `Trigger` of a row; `InvalidTrigger` names a value the core cannot hold."""
    divisor = row_divisor(row, divisor_of)
    values = {
        f.name: from_column(f, row[f.column], divisor)
        for f in TRIGGER_FIELDS
        if f.name != "price_divisor"
    }
    return Trigger(**values, price_divisor=divisor)


def record_from_row(row: Mapping[Any, Any], divisor_of: DivisorOf | None = None) -> TriggerRecord:
    trigger = trigger_from_row(row, divisor_of)
    divisor = trigger.price_divisor
    values = {f.name: from_column(f, row[f.column], divisor) for f in RECORD_FIELDS}
    return TriggerRecord(trigger=trigger, **values)


def rupees(units: int | None, price_divisor: int) -> Decimal | None:
    """Wire units to the exact decimal rupees the table stores."""
    return None if units is None else to_decimal(units, price_divisor)


def user_columns(trigger: Trigger) -> dict[str, Any]:
    """The columns a trader owns, as the table stores them, with the divisor of their prices.

    The divisor is written whenever the prices are: rupees written without the
    divisor they were computed with could be read back with another one.
    """
    divisor = trigger.price_divisor
    return {
        **{f.column: to_column(f, getattr(trigger, f.name), divisor) for f in TRADER_FIELDS},
        "price_divisor": divisor,
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
