"""Prices as integers in the wire unit of the instrument's exchange segment.

Kite sends every price as an integer that the client divides by a per-segment
divisor (`instrument_token & 0xFF`, ../shared/kite/FACTS.md section 1.6). The
core keeps that integer as it is: a tick is compared to a trigger without any
conversion, and only the API edge turns units into decimals and back.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from hmt.core.errors import FieldError, InvalidTrigger

SEGMENT_DIVISORS: dict[int, int] = {
    1: 100,  # nse
    2: 100,  # nfo
    3: 10_000_000,  # cds, NSE currency
    4: 100,  # bse
    5: 100,  # bfo
    6: 10_000,  # bcd, BSE currency
    7: 100,  # mcx
    8: 100,  # mcxsx
    9: 100,  # indices
    12: 10_000,  # nco, NSE commodity (kiteconnect 5.2.2)
}
DEFAULT_DIVISOR = 100  # every official client falls back to it for unknown segments
INDICES_SEGMENT = 9


def segment_of(instrument_token: int) -> int:
    """The exchange segment encoded in the low byte of an instrument token."""
    return instrument_token & 0xFF


def divisor_for(instrument_token: int) -> int:
    """The divisor that turns this instrument's wire prices into rupees."""
    return SEGMENT_DIVISORS.get(instrument_token & 0xFF, DEFAULT_DIVISOR)


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
