"""Rows of `hmt_gtt_orders` as core objects: rupees in the table, wire units in the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import divisor_for, to_decimal, to_units
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

PRICE_FIELDS = ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
# The columns a trader owns; everything else is written only by the server.
USER_FIELDS = (
    "instrument_token",
    "exchange",
    "tradingsymbol",
    "trigger_type",
    "transaction_type",
    *PRICE_FIELDS,
    "quantity",
    "product",
    "order_type",
    "expires_at",
)


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

    @property
    def id(self) -> TriggerId:
        return self.trigger.id

    @property
    def status(self) -> Status:
        return self.trigger.status


def _units(row: Mapping[Any, Any], name: str, divisor: int) -> int | None:
    value = row[name]
    return None if value is None else to_units(value, divisor, field=name)


def trigger_from_row(row: Mapping[Any, Any]) -> Trigger:
    """The core `Trigger` of a row; `InvalidTrigger` names a price the segment cannot hold."""
    token = int(row["instrument_token"])
    divisor = divisor_for(token)
    price_1 = _units(row, "trigger_price_1", divisor)
    if price_1 is None:  # NOT NULL in the schema; kept for the type checker
        raise ValueError("trigger_price_1 is null")
    return Trigger(
        id=TriggerId(str(row["id"])),
        user_id=UserId(row["user_id"]),
        instrument_token=InstrumentToken(token),
        exchange=Exchange(row["exchange"]),
        tradingsymbol=row["tradingsymbol"],
        trigger_type=TriggerType(row["trigger_type"]),
        side=Side(row["transaction_type"]),
        trigger_price_1=price_1,
        trigger_price_2=_units(row, "trigger_price_2", divisor),
        quantity=int(row["quantity"]),
        product=Product(row["product"]),
        order_type=OrderType(row["order_type"]),
        limit_price_1=_units(row, "limit_price_1", divisor),
        limit_price_2=_units(row, "limit_price_2", divisor),
        status=Status(row["status"]),
        expires_at=row["expires_at"],
    )


def record_from_row(row: Mapping[Any, Any]) -> TriggerRecord:
    trigger = trigger_from_row(row)
    leg = row["triggered_leg"]
    return TriggerRecord(
        trigger=trigger,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempts=int(row["attempts"]),
        triggered_leg=None if leg is None else Leg(int(leg)),
        triggered_price=_units(row, "triggered_price", divisor_for(trigger.instrument_token)),
        triggered_at=row["triggered_at"],
        broker_tag=row["broker_tag"],
        order_id=row["order_id"],
        error_message=row["error_message"],
    )


def rupees(units: int | None, instrument_token: int) -> Decimal | None:
    """Wire units to the exact decimal rupees the table stores."""
    return None if units is None else to_decimal(units, divisor_for(instrument_token))


def user_columns(trigger: Trigger) -> dict[str, Any]:
    """The columns a trader owns, as the table stores them."""
    token = trigger.instrument_token
    return {
        "instrument_token": token,
        "exchange": str(trigger.exchange),
        "tradingsymbol": trigger.tradingsymbol,
        "trigger_type": str(trigger.trigger_type),
        "transaction_type": str(trigger.side),
        "trigger_price_1": rupees(trigger.trigger_price_1, token),
        "trigger_price_2": rupees(trigger.trigger_price_2, token),
        "quantity": trigger.quantity,
        "product": str(trigger.product),
        "order_type": str(trigger.order_type),
        "limit_price_1": rupees(trigger.limit_price_1, token),
        "limit_price_2": rupees(trigger.limit_price_2, token),
        "expires_at": trigger.expires_at,
    }
