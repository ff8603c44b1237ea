"""Waiting with a time limit, without losing a cancellation.

Python 3.11's `asyncio.wait_for` returns the result when the awaited operation
completes in the same loop step as the waiting task is cancelled: the
cancellation is swallowed, a loop that waits this way goes round again, and
whoever cancelled it waits for ever (a shutdown that hangs). `asyncio.timeout`
counts cancellations (`Task.uncancel`) and never swallows one, so every wait
with a limit in hmt goes through here (ruff bans `asyncio.wait_for`, TID251).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("hmt.waits")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, or `TimeoutError` after `seconds` (None: no limit)."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def woken(event: asyncio.Event, seconds: float | None) -> bool:
    """Whether `event` was set within `seconds` (False when the time ran out)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_all(tasks: Iterable[asyncio.Task[object]], *, again_after: float = 1.0) -> None:
    """Cancel `tasks` and wait until every one has ended.

    A task still running `again_after` seconds after its cancellation is cancelled
    again (logged): code outside hmt may swallow a cancellation as 3.11's
    `wait_for` does, and a stop must end. What the tasks raised is not re-raised.
    """
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=again_after)
        for task in pending:
            log.warning("task_ignored_cancel", task=task.get_name())
            task.cancel()
