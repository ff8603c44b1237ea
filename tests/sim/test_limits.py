"""The simulator's order rate limiter: Kite's windows, and the record tests read from it."""

from __future__ import annotations

import pytest

from hmt.sim.errors import KiteError
from hmt.sim.limits import OrderLimits, RateLimiter


def test_accepted_keeps_arrival_times_and_refused_counts_429s() -> None:
    """Counted orders keep their arrival times; each 429 is counted and not kept."""
    now = [100.0]
    limiter = RateLimiter(OrderLimits(per_second=2), clock=lambda: now[0])
    limiter.take()
    now[0] = 100.5
    limiter.take()
    with pytest.raises(KiteError) as refused:
        limiter.take()
    assert refused.value.status == 429
    now[0] = 101.0  # the first order has left the 1 s window
    limiter.take()
    assert limiter.accepted() == [100.0, 100.5, 101.0]
    assert limiter.refused == 1
    limiter.reset()
    assert (limiter.accepted(), limiter.refused) == ([], 0)
