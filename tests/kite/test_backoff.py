"""The reconnect schedule."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from hmt.kite.backoff import backoff_delay, nominal_delay


def test_nominal_schedule_doubles_from_the_base_up_to_the_cap() -> None:
    """5 s base, 60 s cap: 5, 10, 20, 40, 60, 60 ... and no overflow far out."""
    assert [nominal_delay(k, 5.0, 60.0) for k in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]
    assert nominal_delay(10_000, 5.0, 60.0) == 60.0
    assert nominal_delay(0, 5.0, 60.0) == 0.0


@given(st.integers(1, 200), st.floats(0.001, 10), st.floats(0, 0.99), st.integers(0, 2**32))
def test_jitter_only_shortens_and_never_passes_the_cap(
    attempt: int, base: float, jitter: float, seed: int
) -> None:
    """Each delay lies in [nominal * (1 - jitter), nominal], so the cap holds."""
    cap = base * 12
    nominal = nominal_delay(attempt, base, cap)
    delay = backoff_delay(attempt, base, cap, jitter, random.Random(seed))
    assert nominal * (1 - jitter) <= delay <= nominal <= cap
