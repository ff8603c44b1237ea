"""Order requests: parsing Kite's form fields, and the order row Kite reports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from hmt.sim.errors import input_error
from hmt.sim.universe import Instrument, Universe

TRANSACTION_TYPES = ("BUY", "SELL")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
PRODUCTS = ("CNC", "MIS", "NRML", "MTF")
VALIDITIES = ("DAY", "IOC", "TTL")
KNOWN_VARIETIES = ("regular", "amo", "co", "iceberg", "auction")
MODELLED_VARIETIES = ("regular",)
TAG = re.compile(r"[A-Za-z0-9]{1,20}")
# Kite's wording (FACTS 2.5, pykiteconnect#225).
NO_PROTECTION = (
    "Market orders without market protection are not allowed via API. "
    "Please set market protection or use a Limit order."
)
# What -1 ("automatic") resolves to here; Kite's own bands are not documented.
AUTO_PROTECTION = Decimal(2)


@dataclass(slots=True)
class Terms:
    """What an order asks for, in wire units."""

    instrument: Instrument
    transaction_type: str
    order_type: str
    quantity: int
    product: str
    price: int
    trigger_price: int
    validity: str
    validity_ttl: int
    disclosed_quantity: int
    protection: Decimal | None  # percent; None when not a MARKET/SL-M order
    tag: str | None


def _field(
    form: Mapping[str, str], name: str, choices: tuple[str, ...], default: str | None = None
) -> str:
    value = form.get(name, default)
    if value is None or value == "":
        raise input_error(f"Missing `{name}`. It must be one of {', '.join(choices)}.")
    if value not in choices:
        raise input_error(f"Invalid `{name}` {value!r}. It must be one of {', '.join(choices)}.")
    return value


def _int(form: Mapping[str, str], name: str, default: int | None = None, low: int = 0) -> int:
    raw = form.get(name)
    if raw is None or raw == "":
        if default is None:
            raise input_error(f"Missing `{name}`.")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise input_error(f"Invalid `{name}` {raw!r}: not a whole number.") from None
    if value < low:
        raise input_error(f"Invalid `{name}` {value}: must be at least {low}.")
    return value


def _decimal(form: Mapping[str, str], name: str) -> Decimal | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise input_error(f"Invalid `{name}` {raw!r}: not a number.") from None
    if not value.is_finite():
        raise input_error(f"Invalid `{name}` {raw!r}: not a finite number.")
    return value


def _price(form: Mapping[str, str], name: str, instrument: Instrument, required: bool) -> int:
    value = _decimal(form, name)
    if value is None or value == 0:
        if required:
            raise input_error(f"Missing `{name}`: required for this order type.")
        return 0
    if value < 0:
        raise input_error(f"Invalid `{name}` {value}: must be positive.")
    units = value * instrument.divisor
    if units != units.to_integral_value():
        raise input_error(f"Invalid `{name}` {value}: more decimals than the instrument allows.")
    return int(units)


def instrument_of(form: Mapping[str, str], universe: Universe) -> Instrument:
    """The instrument named by `exchange` and `tradingsymbol`."""
    exchange, symbol = form.get("exchange", ""), form.get("tradingsymbol", "")
    if not exchange:
        raise input_error("Missing `exchange`.")
    if not symbol:
        raise input_error("Missing `tradingsymbol`.")
    instrument = universe.by_key(f"{exchange}:{symbol}")
    if instrument is None:
        raise input_error(
            f"Invalid `tradingsymbol`: {exchange}:{symbol} is not an instrument "
            "the simulator lists."
        )
    if instrument.is_index:
        raise input_error(f"{exchange}:{symbol} is an index and cannot be traded.")
    return instrument


def parse_terms(
    form: Mapping[str, str], instrument: Instrument, defaults: Mapping[str, str] | None = None
) -> Terms:
    """Validate an order's fields; `defaults` fills in the ones a modify leaves out."""
    merged = {**(defaults or {}), **{k: v for k, v in form.items() if v != ""}}
    order_type = _field(merged, "order_type", ORDER_TYPES)
    protection = None
    if order_type in ("MARKET", "SL-M"):
        protection = _decimal(merged, "market_protection")
        if protection is None or protection == 0:
            raise input_error(NO_PROTECTION)
        if protection == -1:
            protection = AUTO_PROTECTION
        elif not 0 < protection <= 100:
            raise input_error(
                f"Invalid `market_protection` {protection}: use -1 (automatic) "
                "or a percentage above 0 and up to 100."
            )
    tag = merged.get("tag") or None
    if tag is not None and not TAG.fullmatch(tag):
        raise input_error("Invalid `tag`: at most 20 characters, letters and digits only.")
    validity = _field(merged, "validity", VALIDITIES, "DAY")
    return Terms(
        instrument=instrument,
        transaction_type=_field(merged, "transaction_type", TRANSACTION_TYPES),
        order_type=order_type,
        quantity=_int(merged, "quantity", low=1),
        product=_field(merged, "product", PRODUCTS),
        price=_price(merged, "price", instrument, order_type in ("LIMIT", "SL")),
        trigger_price=_price(merged, "trigger_price", instrument, order_type in ("SL", "SL-M")),
        validity=validity,
        validity_ttl=_int(
            merged, "validity_ttl", 1 if validity == "TTL" else 0, low=1 if validity == "TTL" else 0
        ),
        disclosed_quantity=_int(merged, "disclosed_quantity", 0),
        protection=protection,
        tag=tag,
    )


def rupees(units: int, divisor: int) -> int | float:
    """A wire price as Kite's JSON shows it: a whole number when it is one."""
    if units % divisor == 0:
        return units // divisor
    return units / divisor


@dataclass(slots=True)
class Order:
    """One order in the book, in Kite's terms."""

    order_id: str
    variety: str
    terms: Terms
    user_id: str
    guid: str
    order_timestamp: str
    order_type: str  # as the book shows it (a protected MARKET shows as LIMIT)
    limit: int  # the price the order works at, wire units (0: none yet)
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    status_message_raw: str | None = None
    exchange_order_id: str | None = None
    exchange_timestamp: str | None = None
    exchange_update_timestamp: str | None = None
    average_price: int = 0
    filled_quantity: int = 0
    cancelled_quantity: int = 0
    modified: bool = False
    modifications: int = 0
    blocked: int = 0  # funds held for this order, wire units
    tags: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def working(self) -> bool:
        return self.status in ("OPEN", "TRIGGER PENDING")

    def row(self) -> dict[str, Any]:
        """The order as GET /orders shows it (keys as in fixtures/orders.json)."""
        t, d = self.terms, self.terms.instrument.divisor
        done = self.status in ("COMPLETE", "REJECTED")
        pending = 0 if done else t.quantity - self.filled_quantity
        row: dict[str, Any] = {
            "account_id": self.user_id,
            "placed_by": self.user_id,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message_raw,
            "order_timestamp": self.order_timestamp,
            "exchange_update_timestamp": self.exchange_update_timestamp,
            "exchange_timestamp": self.exchange_timestamp,
            "variety": self.variety,
            "modified": self.modified,
            "exchange": t.instrument.exchange,
            "tradingsymbol": t.instrument.tradingsymbol,
            "instrument_token": t.instrument.token,
            "order_type": self.order_type,
            "transaction_type": t.transaction_type,
            "validity": t.validity,
            "validity_ttl": t.validity_ttl,
            "product": t.product,
            "quantity": t.quantity,
            "disclosed_quantity": t.disclosed_quantity,
            "price": rupees(self.limit if self.order_type in ("LIMIT", "SL") else 0, d),
            "trigger_price": rupees(t.trigger_price, d),
            "average_price": rupees(self.average_price, d),
            "filled_quantity": self.filled_quantity,
            "pending_quantity": pending,
            "cancelled_quantity": self.cancelled_quantity,
            # The fixture's protected order shows 0 here: protection is spent on conversion.
            "market_protection": 0,
            "meta": {},
            "tag": t.tag,
            "guid": self.guid,
        }
        if self.tags:  # Kite adds `tags` only to rows that have some (fixtures/orders.json)
            row["tags"] = list(self.tags)
        return row
