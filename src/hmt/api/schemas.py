"""The API's JSON: prices in rupees as decimals at the edge, wire units inside."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.events import TriggerEvent
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.prices import divisor_for, to_decimal, to_units
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.store.records import TriggerRecord

# Rupees with at most 7 decimals (CDS is the finest segment); never floats inside.
Price = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=7)]


class TriggerIn(BaseModel):
    """A new trigger. Prices in rupees, as numbers or strings ("1600.05")."""

    model_config = ConfigDict(extra="forbid")

    instrument_token: Annotated[int, Field(gt=0, lt=2**32)]
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
    paused: bool = False

    def to_trigger(
        self, trigger_id: TriggerId, user_id: UserId, *, divisor: int | None = None
    ) -> Trigger:
        """The core trigger, prices in wire units of `divisor` (the instrument master's)."""
        divisor = divisor or divisor_for(self.instrument_token)

        def units(value: Decimal | None, field: str) -> int | None:
            return None if value is None else to_units(value, divisor, field=field)

        return Trigger(
            id=trigger_id,
            user_id=user_id,
            instrument_token=InstrumentToken(self.instrument_token),
            exchange=self.exchange,
            tradingsymbol=self.tradingsymbol,
            trigger_type=self.trigger_type,
            side=self.transaction_type,
            trigger_price_1=to_units(self.trigger_price_1, divisor, field="trigger_price_1"),
            trigger_price_2=units(self.trigger_price_2, "trigger_price_2"),
            quantity=self.quantity,
            product=self.product,
            order_type=self.order_type,
            limit_price_1=units(self.limit_price_1, "limit_price_1"),
            limit_price_2=units(self.limit_price_2, "limit_price_2"),
            status=Status.PAUSED if self.paused else Status.ACTIVE,
            expires_at=self.expires_at,
        )


# Set only by hmt: a request naming one gets 422 with the rule `read_only`.
SERVER_OWNED = frozenset(
    {
        "id",
        "user_id",
        "status",
        "triggered_leg",
        "triggered_price",
        "triggered_at",
        "broker_tag",
        "order_id",
        "error_message",
        "attempts",
        "created_at",
        "updated_at",
        "warnings",
        "events",
    }
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
_PRICES = ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")


class TriggerPatch(BaseModel):
    """An edit of an active or paused trigger: only the fields sent change.

    Omitting a field keeps it; `null` clears one of the optional fields
    (trigger_price_2, limit prices, expires_at) and is refused for the others.
    Pausing and resuming are their own endpoints.
    """

    model_config = ConfigDict(extra="forbid")

    # `None` defaults mark "not sent"; the types refuse an explicit null.
    instrument_token: Annotated[int, Field(gt=0, lt=2**32)] = None  # type: ignore[assignment]
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

    def changes(self, current: Trigger, *, divisor: int | None = None) -> dict[str, Any]:
        """The sent fields as `Trigger` field values (prices in wire units of `divisor`,
        the edited instrument's, from the instrument master)."""
        sent = self.model_fields_set
        if not sent:
            raise InvalidTrigger([FieldError("body", "not_empty", "send at least one field")])
        token = self.instrument_token if "instrument_token" in sent else current.instrument_token
        divisor, old = divisor or divisor_for(token), divisor_for(current.instrument_token)
        out: dict[str, Any] = {}
        for name in _PRICES:
            if name in sent:
                value = getattr(self, name)
                out[name] = None if value is None else to_units(value, divisor, field=name)
            elif divisor != old and getattr(current, name) is not None:
                # Another segment's unit: the same rupees, re-expressed.
                rupees = to_decimal(getattr(current, name), old)
                out[name] = to_units(rupees, divisor, field=name)
        for name in sent - set(_PRICES):
            value = getattr(self, name)
            if name == "instrument_token":
                value = InstrumentToken(value)
            out["side" if name == "transaction_type" else name] = value
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
        t = record.trigger
        divisor = divisor_for(t.instrument_token)

        def rupees(units: int | None) -> Decimal | None:
            return None if units is None else to_decimal(units, divisor)

        return cls(
            id=t.id,
            user_id=t.user_id,
            instrument_token=t.instrument_token,
            exchange=t.exchange,
            tradingsymbol=t.tradingsymbol,
            trigger_type=t.trigger_type,
            transaction_type=t.side,
            trigger_price_1=to_decimal(t.trigger_price_1, divisor),
            trigger_price_2=rupees(t.trigger_price_2),
            quantity=t.quantity,
            product=t.product,
            order_type=t.order_type,
            limit_price_1=rupees(t.limit_price_1),
            limit_price_2=rupees(t.limit_price_2),
            status=t.status,
            triggered_leg=None if record.triggered_leg is None else int(record.triggered_leg),
            triggered_price=rupees(record.triggered_price),
            triggered_at=record.triggered_at,
            broker_tag=record.broker_tag,
            order_id=record.order_id,
            error_message=record.error_message,
            attempts=record.attempts,
            created_at=record.created_at,
            updated_at=record.updated_at,
            expires_at=t.expires_at,
            warnings=warnings or [],
            events=None
            if events is None
            else [EventOut(kind=e.kind.value, at=e.at, payload=dict(e.payload)) for e in events],
        )


class FieldProblem(BaseModel):
    field: str
    rule: str
    message: str


class Problem(BaseModel):
    """Every 4xx body: what was wrong, and for bad input, each field and rule."""

    detail: str
    errors: list[FieldProblem] = []
