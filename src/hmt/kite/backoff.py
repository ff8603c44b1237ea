"""The reconnect schedule: exponential from a base delay, capped, with jitter.

Attempt k (1-based) waits a nominal `min(cap, base * 2**(k-1))`, drawn down by
up to `jitter` of itself: never longer than nominal, so the cap is a true cap,
and many clients dropped at once do not come back in step.
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 62  # 2**62 times any sane base is past every cap; keeps the float finite


def nominal_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """The un-jittered wait before reconnect attempt `attempt` (1 = first retry)."""
    if attempt < 1:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, jitter: float, rng: random.Random
) -> float:
    """The wait before attempt `attempt`: nominal, minus a random share up to `jitter`."""
    nominal = nominal_delay(attempt, base_s, cap_s)
    return nominal * (1.0 - jitter * rng.random())
