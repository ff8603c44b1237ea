"""Wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    predicate: Callable[[], object], within: float = 5.0, interval: float = 0.005
) -> float:
    """Poll `predicate` until it is truthy; the seconds it took. AssertionError after `within`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"condition not met within {within} s: {predicate}")
        await asyncio.sleep(interval)
    return time.monotonic() - started
