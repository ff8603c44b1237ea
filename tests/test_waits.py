"""hmt.waits: a cancellation that arrives as the wait ends is never lost.

The race of Python 3.11's `asyncio.wait_for`: the awaited operation completes in
the same loop step as the waiting task is cancelled. Each test stages that step
exactly: the operation is made to finish and the task is cancelled before the
loop runs either.
"""

from __future__ import annotations

import asyncio

import pytest

from hmt.waits import cancel_all, within, woken


async def _stopped(task: asyncio.Task[object]) -> bool:
    """Whether `task` ended by cancellation within a second (it does not when swallowed)."""
    done, _ = await asyncio.wait({task}, timeout=1)
    return task in done and task.cancelled()


async def test_woken_passes_on_a_cancel_that_arrives_as_the_event_is_set() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            await woken(event, 10)
            event.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop waits on the event
    event.set()
    task.cancel()
    assert await _stopped(task)
    assert rounds == 0


async def test_within_passes_on_a_cancel_that_arrives_as_the_operation_completes() -> None:
    rounds = 0
    answers: list[asyncio.Future[int]] = []
    asked = asyncio.Event()

    async def operation() -> int:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        answers.append(answer)
        asked.set()
        return await answer

    async def loop() -> None:
        nonlocal rounds
        while True:
            await within(operation(), 10)
            rounds += 1

    task = asyncio.create_task(loop())
    await asked.wait()  # the operation is under way
    answers[0].set_result(1)
    task.cancel()
    assert await _stopped(task)
    assert rounds == 0


async def test_time_limits() -> None:
    never = asyncio.Event()
    assert await woken(never, 0.01) is False
    with pytest.raises(TimeoutError):
        await within(never.wait(), 0.01)
    assert await within(asyncio.sleep(0, result=7), 1) == 7
    set_already = asyncio.Event()
    set_already.set()
    assert await woken(set_already, 0) is True


async def test_cancel_all_ends_a_task_that_ignores_its_first_cancel() -> None:
    ignored = 0

    async def stubborn() -> None:
        nonlocal ignored
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if ignored:
                    raise
                ignored += 1  # swallowed once, as a 3.11 wait_for can

    task = asyncio.create_task(stubborn())
    quiet = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    await within(cancel_all([task, quiet], again_after=0.05), 2)
    assert task.cancelled()
    assert quiet.cancelled()
    assert ignored == 1
