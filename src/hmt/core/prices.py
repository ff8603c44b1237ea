"""Prices as integers in the wire unit of their instrument.

A broker sends every price as an integer that the client divides by the
instrument's price divisor (Kite: 100 for paise, 10^7 for NSE currency). The
core keeps that integer as it is: a tick is compared to a trigger without any
conversion, and only the edges turn units into decimals and back, with the
divisor the trigger carries (`Trigger.price_divisor`). Which divisor an
instrument has is the broker adapter's knowledge (Kite: `hmt.kite.segments`);
the core never derives it from an instrument id.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from hmt.core.errors import FieldError, InvalidTrigger


def to_units(price: Decimal | int | str, divisor: int, *, field: str = "price") -> int:
    """Convert a decimal price to wire units, refusing any that is not exact.

    Floats are not accepted: 0.1 has no exact binary value, and a trigger at
    "1600.05" must compare equal to the tick that carries 160005.
    """
    try:
        value = Decimal(price)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidTrigger([FieldError(field, "number", f"{price!r} is not a number")]) from None
    if not value.is_finite():
        raise InvalidTrigger([FieldError(field, "number", f"{price!r} is not a finite number")])
    scaled = value * divisor
    if scaled != scaled.to_integral_value():
        raise InvalidTrigger(
            [FieldError(field, "precision", f"{price} has more decimals than 1/{divisor} allows")]
        )
    return int(scaled)


def to_decimal(units: int, divisor: int) -> Decimal:
    """Convert wire units back to an exact decimal price."""
    return Decimal(units) / Decimal(divisor)
