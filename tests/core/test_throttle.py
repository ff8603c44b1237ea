"""The order throttle: never more than a window allows, and no wait longer than needed."""

from __future__ import annotations

import math

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


def test_orders_in_flight_count_until_answered_then_at_the_answers_time() -> None:
    """An unanswered order fills its slot; answered, it counts from its answer, not its send."""
    throttle = Throttle([Limit(2, 1.0)])
    throttle.begin(0.0)
    throttle.begin(0.0)
    assert throttle.wait(5.0) == math.inf  # both still in flight: only an answer frees a slot
    throttle.end(0.3)
    assert throttle.wait(0.3) == pytest.approx(1.0)  # the first counts from its answer at 0.3
    throttle.end(0.4)
    assert throttle.wait(1.3) == 0
    throttle.begin(1.3)
    with pytest.raises(ValueError, match="before the throttle allowed"):
        throttle.begin(1.3)
    assert throttle.wait(1.3) == pytest.approx(0.1)


def test_end_without_begin_is_refused() -> None:
    """An answer for an order never begun is a caller's bug, said at once."""
    with pytest.raises(ValueError, match="without an order in flight"):
        Throttle(LIMITS).end(0.0)


# Times on a 1/64 s grid: exact in binary, so window edges compare without float noise.
_REQUESTED = st.integers(0, 640).map(lambda n: n / 64)  # 0-10 s
_LATENCY = st.integers(0, 192).map(lambda n: n / 64)  # 0-3 s


@given(st.lists(st.tuples(_REQUESTED, _LATENCY), max_size=40))
def test_no_broker_window_overflows_whenever_requests_arrive(
    orders: list[tuple[float, float]],
) -> None:
    """Orders (request time, answer latency) sent as `begin`/`end` allow: whenever in
    [send, answer] each arrives at the broker, no window there holds more than its limit."""
    throttle = Throttle(LIMITS)
    pending = sorted(orders)
    answers: list[float] = []  # of the orders in flight
    done: list[tuple[float, float]] = []  # (sent, answered)
    clock = 0.0
    while pending or answers:
        answers.sort()
        while answers and answers[0] <= clock:
            throttle.end(answers.pop(0))
        next_answer = answers[0] if answers else math.inf
        if not pending:
            clock = next_answer
            continue
        requested, latency = pending[0]
        clock = max(clock, requested)
        if (delay := throttle.wait(clock)) > 0:
            clock = min(clock + delay, next_answer)
            continue
        throttle.begin(clock)
        pending.pop(0)
        done.append((clock, clock + latency))
        answers.append(clock + latency)
    assert len(done) == len(orders), "queued, never dropped"
    for limit in LIMITS:
        # The busiest window ends at some send: count every order that could fall in it.
        for sent, _ in done:
            could = [1 for s, a in done if s <= sent and a > sent - limit.seconds]
            assert len(could) <= limit.count


def test_a_cancelled_begin_counts_nowhere() -> None:
    """A slot taken for an order whose claim was lost is given back: the window is as before."""
    throttle = Throttle([Limit(1, 1.0)])
    throttle.begin(0.0)
    assert throttle.wait(0.0) == math.inf  # the one slot is held
    throttle.cancel()
    assert throttle.wait(0.0) == 0
    throttle.begin(0.0)
    throttle.end(0.1)
    assert throttle.wait(0.5) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="cancel"):
        throttle.cancel()
