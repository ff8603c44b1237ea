"""Order rate limits as sliding windows: when may the next order go?

Kite allows 10 orders a second, 200 a minute and 3,000 a day per API key
(../shared/kite/FACTS.md section 2.4), and answers 429 beyond them. The
engine queues instead of dropping: it asks `wait` how long to hold the next
order, sleeps that long, then `take`s the slot. Time is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` orders in any `seconds`-long window."""

    count: int
    seconds: float


# Float sums of times can land a hair short of the instant a window frees.
_TOLERANCE = 1e-9

KITE_ORDER_LIMITS: tuple[Limit, ...] = (Limit(10, 1.0), Limit(200, 60.0), Limit(3_000, 86_400.0))


class Throttle:
    """Sliding-window limiter over several windows at once.

    For each window it keeps the send times of the last `count` orders; a new
    order may go once the oldest of them has left the window. `margin` widens
    every window a little, so that delays on the way to the broker cannot push
    two bursts into one of its windows.
    """

    __slots__ = ("_margin", "_windows")

    def __init__(self, limits: Iterable[Limit], *, margin: float = 0.0) -> None:
        self._windows = [(limit, deque[float](maxlen=limit.count)) for limit in limits]
        self._margin = margin

    def wait(self, now: float) -> float:
        """Seconds to wait before an order may be sent at or after `now`; 0 if it may go now."""
        delay = self._earliest() - now
        return delay if delay > _TOLERANCE else 0.0

    def take(self, now: float) -> float:
        """Record an order sent at `now`; it must be allowed (`wait(now) == 0`).

        Returns the time recorded: `now`, or the instant the window frees when
        `now` is within float rounding of it, so the history never holds more
        than a window allows.
        """
        if self.wait(now) > 0:
            raise ValueError("order sent before the throttle allowed it")
        at = max(now, self._earliest())
        for _, sent in self._windows:
            sent.append(at)
        return at

    def _earliest(self) -> float:
        earliest = float("-inf")
        for limit, sent in self._windows:
            if len(sent) == limit.count:
                earliest = max(earliest, sent[0] + limit.seconds + self._margin)
        return earliest
