"""A trailing stop after a blind spot: was it touched while the engine was not looking?

The engine learns of a blind spot (a reconnection, a stall, a restart) only
the day's high and low before and after it, never their order. So the rule
is the conservative one (docs/engine.md, "Trailing stops"):

- a SELL stop was touched when the day's low fell during the blind spot
  (`after.low < before.low`) to or below the stop as it stood when the engine
  went blind (`after.low <= stop`); a BUY stop mirrors it on the high. The
  stop compared is the one from before the blind spot, not one a later tick
  moved: the low came before that tick;
- the blind spot's high (a SELL stop's) never raises the stop: the high may
  have come after the low, and a stop raised by it could fire on a price that
  was seen before it existed. The first tick after the blind spot moves the
  stop as any tick does;
- a trail not yet active is not activated by the blind spot's range: it
  activates on the next reference at or past its activation.

A dip to the stop that stayed above the day's earlier low leaves no trace
in the day's range: only the first tick after it tells (it fires if the
price is still at or past the stop).
"""

from __future__ import annotations

from hmt.core.gaps import DayRange
from hmt.core.trailing import Trail
from hmt.core.types import Side


def touched(trail: Trail, stop: int, before: DayRange, after: DayRange) -> int | None:
    """The price at which `trail`'s `stop` (as it stood when the blind spot began) was
    touched in the blind spot between `before` and `after` (the day's new low for a SELL
    stop, high for a BUY), else None."""
    if trail.side is Side.SELL:
        return after.low if after.low < before.low and after.low <= stop else None
    return after.high if after.high > before.high and after.high >= stop else None
