"""The `legs` column: each leg's condition and basket (`LegSpec`s) as JSON.

One object per leg, in leg order; NULL (never an empty list) is the v1 shape.
Kite's names, as in the table's own columns; prices are rupees as exact
decimal strings, each converted with its own order's `price_divisor` (carried
in the order, so another tool reads rupees without the instrument master);
times are ISO 8601 in UTC. A leg's price threshold is not here: it stays in
`trigger_price_N`, read with the watched instrument's divisor (records.py).

    [{"direction": "at_or_below" | null,
      "at": "2026-12-01T09:45:00+00:00" | null,
      "orders": [{"instrument_token": 12345, "exchange": "NFO",
                  "tradingsymbol": "NIFTY26DEC23800PE", "transaction_type": "BUY",
                  "quantity": 75, "product": "NRML", "order_type": "SL",
                  "price": "101.5", "trigger_price": "100", "validity": "DAY",
                  "price_divisor": 100}]}]

A trailing leg (issue 14) adds `"trail"`, its terms in the watched instrument's
rupees with that `price_divisor` (`hmt.store.trails`); a leg without one has
no `"trail"` key, so every row written before reads and compares as before.

A value another tool wrote that the core cannot hold raises `InvalidTrigger`
naming its place, e.g. `legs[0].orders[2].price`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.model import LegSpec, OrderSpec
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import (
    Direction,
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    Validity,
)
from hmt.store import trails
from hmt.store.columns import canonical

COLUMN = "legs"
E = TypeVar("E", bound=Enum)


def to_json(specs: Sequence[LegSpec], watch_divisor: int = 100) -> list[dict[str, Any]] | None:
    """The column's value for `Trigger.leg_specs`: None (SQL NULL) for the v1 shape.
    `watch_divisor`: the watched instrument's, for a trailing leg's prices."""
    if not specs:
        return None
    out = []
    for spec in specs:
        leg: dict[str, Any] = {
            "direction": None if spec.direction is None else spec.direction.value,
            "at": None if spec.at is None else spec.at.astimezone(UTC).isoformat(),
            "orders": [_order_to_json(order) for order in spec.orders],
        }
        if spec.trail is not None:
            leg["trail"] = trails.to_json(spec.trail, watch_divisor)
        out.append(leg)
    return out


def _order_to_json(order: OrderSpec) -> dict[str, Any]:
    return {
        "instrument_token": int(order.instrument_token),
        "exchange": order.exchange.value,
        "tradingsymbol": order.tradingsymbol,
        "transaction_type": order.side.value,
        "quantity": order.quantity,
        "product": order.product.value,
        "order_type": order.order_type.value,
        "price": _rupees(order.price, order.price_divisor),
        "trigger_price": _rupees(order.trigger_price, order.price_divisor),
        "validity": order.validity.value,
        "price_divisor": order.price_divisor,
    }


def _rupees(units: int | None, divisor: int) -> str | None:
    return None if units is None else canonical(to_decimal(units, divisor))


def from_json(value: Any) -> tuple[LegSpec, ...]:
    """`Trigger.leg_specs` from the column's value (parsed, or JSON text as SQLite may
    hand it over); NULL is the v1 shape, ()."""
    if value is None:
        return ()
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise _error(COLUMN, "json", "is not JSON") from None
    if value is None:
        return ()
    legs = _list(value, COLUMN)
    if not legs:
        raise _error(COLUMN, "count", "is an empty list: NULL is the v1 shape")
    return tuple(_leg(leg, f"{COLUMN}[{i}]") for i, leg in enumerate(legs))


def _leg(value: Any, path: str) -> LegSpec:
    leg = _object(value, path)
    direction = leg.get("direction")
    at = leg.get("at")
    trail = leg.get("trail")
    return LegSpec(
        trail=None if trail is None else trails.from_json(trail, f"{path}.trail"),
        direction=None if direction is None else _enum(Direction, direction, f"{path}.direction"),
        at=None if at is None else _time(at, f"{path}.at"),
        orders=tuple(
            _order(order, f"{path}.orders[{i}]")
            for i, order in enumerate(_list(leg.get("orders", []), f"{path}.orders"))
        ),
    )


def _order(value: Any, path: str) -> OrderSpec:
    order = _object(value, path)
    divisor = _int(_required(order, "price_divisor", path), f"{path}.price_divisor")
    if divisor <= 0:
        raise _error(f"{path}.price_divisor", "positive", "must be greater than 0")
    price, trigger_price = order.get("price"), order.get("trigger_price")
    return OrderSpec(
        instrument_token=InstrumentToken(
            _int(_required(order, "instrument_token", path), f"{path}.instrument_token")
        ),
        exchange=_enum(Exchange, _required(order, "exchange", path), f"{path}.exchange"),
        tradingsymbol=_str(_required(order, "tradingsymbol", path), f"{path}.tradingsymbol"),
        side=_enum(Side, _required(order, "transaction_type", path), f"{path}.transaction_type"),
        quantity=_int(_required(order, "quantity", path), f"{path}.quantity"),
        product=_enum(Product, _required(order, "product", path), f"{path}.product"),
        order_type=_enum(OrderType, _required(order, "order_type", path), f"{path}.order_type"),
        price=None if price is None else _units(price, divisor, f"{path}.price"),
        trigger_price=(
            None
            if trigger_price is None
            else _units(trigger_price, divisor, f"{path}.trigger_price")
        ),
        validity=_enum(Validity, order.get("validity", Validity.DAY.value), f"{path}.validity"),
        price_divisor=divisor,
    )


def _error(path: str, rule: str, message: str) -> InvalidTrigger:
    return InvalidTrigger([FieldError(path, rule, message)])


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _error(path, "object", "must be a JSON object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _error(path, "list", "must be a JSON list")
    return value


def _required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _error(f"{path}.{key}", "required", "is missing")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(path, "integer", f"{value!r} is not an integer")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _error(path, "string", f"{value!r} is not a string")
    return value


def _enum(kind: type[E], value: Any, path: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise _error(path, "enum", f"{value!r} is not a {kind.__name__}") from None


def _units(value: Any, divisor: int, path: str) -> int:
    # A number another tool wrote is read through its shortest decimal form, as
    # the price columns do; hmt itself writes decimal strings.
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _error(path, "number", f"{value!r} is not a price")
    return to_units(text, divisor, field=path)


def _time(value: Any, path: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, path))
    except ValueError:
        raise _error(path, "time", f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _error(path, "timezone", "must carry a time zone")
    return moment.astimezone(UTC)
