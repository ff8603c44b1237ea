"""Kite's order rate limits: 10 per second, 200 per minute, 3000 per day (FACTS 2.4)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hmt.sim.errors import KiteError

# The body of Kite's 429 is not documented; "Too many requests" as a
# NetworkException is what pykiteconnect users report seeing.
TOO_MANY = "Too many requests"


@dataclass(frozen=True, slots=True)
class OrderLimits:
    """How many order placements Kite allows per second, minute and day."""

    per_second: int = 10
    per_minute: int = 200
    per_day: int = 3000


class RateLimiter:
    """Sliding windows over a monotonic clock; a refused request is not counted."""

    def __init__(self, limits: OrderLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._windows = (
            (1.0, limits.per_second),
            (60.0, limits.per_minute),
            (86_400.0, limits.per_day),
        )
        self._stamps: deque[float] = deque()
        self.refused = 0  # 429s answered: a client that respects the limits causes none

    def take(self) -> None:
        """Count one request, or raise Kite's 429 when any window is full."""
        now = self.clock()
        stamps = self._stamps
        while stamps and now - stamps[0] >= 86_400.0:
            stamps.popleft()
        for window, limit in self._windows:
            recent = sum(1 for _ in _since(stamps, now - window))
            if recent >= limit:
                self.refused += 1
                raise KiteError("NetworkException", TOO_MANY, 429)
        stamps.append(now)

    def accepted(self) -> list[float]:
        """When each counted order arrived (the clock's seconds, oldest first, last 24 h)."""
        return list(self._stamps)

    def reset(self) -> None:
        self._stamps.clear()
        self.refused = 0


def _since(stamps: deque[float], start: float) -> list[float]:
    # Newest first: stop at the first stamp outside the window.
    out = []
    for stamp in reversed(stamps):
        if stamp <= start:
            break
        out.append(stamp)
    return out
