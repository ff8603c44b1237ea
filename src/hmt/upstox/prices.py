"""Upstox's prices in hmt's integer units: one divisor per instrument, from its tick size.

Upstox sends prices as doubles in rupees (FACTS 1.4) and lists tick sizes in
paise in its JSON master (FACTS 4). The core works in integers: an
instrument's wire unit is 1/divisor rupee, where the divisor is the smallest
power of ten, at least 100 (paise), in which the tick is a whole number:
100 for a 0.05 tick (equity, F&O), 10 000 for a 0.0025 tick (currency).
A price is then `round(rupees * divisor)`; the double's own error is far
below half a unit, so rounding recovers the exchange's exact price.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from hmt.upstox.feed_codec import FeedError

MIN_DIVISOR = 100  # paise: every Indian price is at least this fine
MAX_DIVISOR = 10**9
# A double that is this far (in units) from a whole unit is not on the grid.
_GRID_SLACK = 1e-3


def divisor_for_tick(tick_rupees: Decimal) -> int:
    """The smallest power of ten (>= 100) that makes `tick_rupees` a whole number of units."""
    if not tick_rupees.is_finite() or tick_rupees < 0:
        raise ValueError(f"tick size must be a finite rupee amount >= 0, not {tick_rupees}")
    divisor = MIN_DIVISOR
    while (tick_rupees * divisor) != (tick_rupees * divisor).to_integral_value():
        divisor *= 10
        if divisor > MAX_DIVISOR:
            raise ValueError(f"tick size {tick_rupees} is finer than 1/{MAX_DIVISOR} rupee")
    return divisor


def tick_from_paise(tick_paise: object) -> Decimal:
    """The master's `tick_size` (paise, FACTS 4) in rupees, exactly (via its decimal text)."""
    if isinstance(tick_paise, bool) or not isinstance(tick_paise, int | float | str):
        raise ValueError(f"tick_size must be a number, not {tick_paise!r}")
    try:
        paise = Decimal(str(tick_paise))
    except InvalidOperation:
        raise ValueError(f"tick_size must be a number, not {tick_paise!r}") from None
    return paise / 100


def to_units(rupees: float, divisor: int) -> int:
    """A feed price in the instrument's integer units; `FeedError` if it is off its grid."""
    scaled = rupees * divisor
    try:
        units = round(scaled)
    except (ValueError, OverflowError):  # NaN, infinity
        raise FeedError(f"price {rupees!r} is not a finite number") from None
    if abs(scaled - units) > _GRID_SLACK:
        raise FeedError(f"price {rupees!r} is finer than 1/{divisor} rupee")
    return units
