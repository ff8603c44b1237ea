"""Waiting for a condition without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.02
) -> None:
    """Poll `predicate` until it holds; fail with a clear message after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
