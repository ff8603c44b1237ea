"""The order throttle: never more than a window allows, and no wait longer than needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.core.throttle import KITE_ORDER_LIMITS, Limit, Throttle

LIMITS = (Limit(3, 1.0), Limit(5, 10.0))


def schedule(requests: list[float], throttle: Throttle) -> list[float]:
    """Send each request (in arrival order) as soon as the throttle allows; return send times."""
    sent, clock = [], 0.0
    for arrival in sorted(requests):
        clock = max(clock, arrival)
        clock += throttle.wait(clock)
        sent.append(throttle.take(clock))
    return sent


@given(st.lists(st.floats(0, 30, allow_nan=False), max_size=60))
def test_no_window_ever_exceeds_its_limit(requests: list[float]) -> None:
    """In every window of every limit, the sends counted by brute force stay within the limit."""
    sent = schedule(requests, Throttle(LIMITS))
    assert len(sent) == len(requests), "queued, never dropped"
    for limit in LIMITS:
        for start in sent:
            in_window = [t for t in sent if start <= t < start + limit.seconds]
            assert len(in_window) <= limit.count


@given(st.lists(st.floats(0, 30, allow_nan=False), max_size=60))
def test_each_wait_is_no_longer_than_needed(requests: list[float]) -> None:
    """An order is sent on arrival, or the moment a window frees: an instant earlier breaks one."""
    throttle = Throttle(LIMITS)
    clock = 0.0
    for arrival in sorted(requests):
        clock = max(clock, arrival)
        delay = throttle.wait(clock)
        if delay > 1e-6:
            assert throttle.wait(clock + delay) == 0
            assert throttle.wait(clock + delay - 1e-6) > 0
        clock += delay
        throttle.take(clock)


def test_burst_of_fifty_at_kite_limits() -> None:
    """Fifty orders at once go out ten per second: the last one five seconds later, minus one."""
    sent = schedule([0.0] * 50, Throttle(KITE_ORDER_LIMITS))
    assert sent[:10] == [0.0] * 10
    assert sent[10] == pytest.approx(1.0)
    assert sent[-1] == pytest.approx(4.0)


def test_margin_widens_windows_and_early_take_is_refused() -> None:
    """A margin holds the next order slightly longer; taking a slot too early raises."""
    throttle = Throttle([Limit(1, 1.0)], margin=0.05)
    throttle.take(0.0)
    assert throttle.wait(0.5) == pytest.approx(0.55)
    with pytest.raises(ValueError, match="before the throttle allowed"):
        throttle.take(1.0)
    throttle.take(1.05)
