"""Order rate limits as sliding windows: when may the next order go?

Kite allows 10 orders a second, 200 a minute and 3,000 a day per API key
(../shared/kite/FACTS.md section 2.4), and answers 429 beyond them. The
engine queues instead of dropping: it asks `wait` how long to hold the next
order, sleeps that long, then `take`s the slot. Time is passed in.

The broker counts an order when it arrives, which is some time after we send
it and before we read its answer. The engine therefore `begin`s an order
(it counts in every window while in flight) and `end`s it when the answer
comes: the answer's time is the latest the broker can have counted it, so
however late a request travels, no window at the broker's side overflows.
"""

from __future__ import annotations

import math
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
# Upstox's order writes (docs/upstox/FACTS.md 2.8): 10/s, 500/min, 2000/30 min.
UPSTOX_ORDER_LIMITS: tuple[Limit, ...] = (Limit(10, 1.0), Limit(500, 60.0), Limit(2_000, 1_800.0))


class Throttle:
    """Sliding-window limiter over several windows at once.

    For each window it keeps the times of the last `count` orders (their
    answers' times, for orders that `begin` and `end`), and counts the orders
    still in flight as inside every window. A new order may go once fewer
    than `count` are left in each window. `margin` widens every window a
    little, for the difference between our clock and the broker's.
    """

    __slots__ = ("_in_flight", "_margin", "_windows")

    def __init__(self, limits: Iterable[Limit], *, margin: float = 0.0) -> None:
        self._windows = [(limit, deque[float](maxlen=limit.count)) for limit in limits]
        self._margin = margin
        self._in_flight = 0

    def wait(self, now: float) -> float:
        """Seconds to wait before an order may be sent at or after `now`; 0 if it may go now.

        `math.inf` while the orders in flight alone fill a window: only an answer frees it.
        """
        delay = self._earliest() - now
        return delay if delay > _TOLERANCE else 0.0

    def begin(self, now: float) -> None:
        """An order is sent at `now`; it counts in every window until its `end`."""
        if self.wait(now) > 0:
            raise ValueError("order sent before the throttle allowed it")
        self._in_flight += 1

    def cancel(self) -> None:
        """A `begin` whose order was never sent (its claim was lost): it counts nowhere."""
        if self._in_flight <= 0:
            raise ValueError("cancel() without an order in flight")
        self._in_flight -= 1

    def end(self, now: float) -> None:
        """The answer to a `begin`'s order (or its failure) came at `now`."""
        if self._in_flight <= 0:
            raise ValueError("end() without an order in flight")
        self._in_flight -= 1
        for _, sent in self._windows:
            sent.append(max(now, sent[-1]) if sent else now)

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

    def headroom(self, now: float) -> tuple[tuple[Limit, int], ...]:
        """Per window, how many more orders it would take at `now` (in flight counted as used).

        What an operator watches: 0 means the next order queues for that window.
        """
        remaining = []
        for limit, sent in self._windows:
            start = now - limit.seconds - self._margin
            recent = sum(1 for at in list(sent) if at > start)
            remaining.append((limit, max(0, limit.count - recent - self._in_flight)))
        return tuple(remaining)

    def _earliest(self) -> float:
        earliest = -math.inf
        for limit, sent in self._windows:
            # The oldest `leaving` recorded orders must be out of the window first.
            leaving = len(sent) + self._in_flight - limit.count + 1
            if leaving > len(sent):
                return math.inf
            if leaving > 0:
                earliest = max(earliest, sent[leaving - 1] + limit.seconds + self._margin)
        return earliest
