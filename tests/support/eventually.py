"""Wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], object | Awaitable[object]],
    within: float = 10.0,
    interval: float = 0.005,
) -> float:
    """Poll `predicate` (plain or async) until it is truthy; the seconds it took.

    AssertionError after `within` seconds.
    """
    started = time.monotonic()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"condition not met within {within} s: {predicate}")
        await asyncio.sleep(interval)
