"""The background loops around a running engine: start-up load, expiry, claims, health, changes.

`Supervisor.start` starts the engine (recovery, the book's load, the feed) and
then four loops (expiry, the expired-claim sweep, health, the change feed),
and runs its warm-up work (the instrument master's first fetch) in the
background; `stop` cancels them. A loop round that raises is
logged and the loop goes on: one bad round must not end expiry or health
checks for good.

This module also owns the cyclic garbage collector's treatment of long-lived
data (`collector_paused`, `freeze_survivors`): the book holds a million small
objects for the life of the process, the instrument master some 100,000 for a
day, and a collector walking them on the tick path costs milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any

import structlog

from hmt.core.types import TriggerId
from hmt.engine.health import Health
from hmt.engine.ports import ChangeSource
from hmt.engine.sampler import Sampler
from hmt.engine.service import Engine, EngineState
from hmt.store.changes import Change, Op, Resync
from hmt.waits import cancel_all, woken

log = structlog.get_logger("hmt.supervisor")

EXPIRY_SWEEP_S = 5.0
# Half the default claim lease (30 s): a dead engine's claim is settled within 1.5 leases.
CLAIM_SWEEP_S = 15.0
LISTEN_WAIT_S = 5.0
# The day ranges (missed touches) changed since the last save are saved this often.
RANGES_SAVE_S = 5.0
# A loop that raised starts again after this long.
RESTART_S = 1.0


class Supervisor:
    """Starts the engine and keeps its background loops alive until `stop`."""

    def __init__(
        self,
        engine: Engine,
        *,
        expire_due: Callable[[], Awaitable[list[TriggerId]]],
        health: Callable[[], Health],
        ping: Callable[[], Awaitable[object]],
        health_interval: float,
        changes: Callable[[], ChangeSource] | None = None,
        warm: Sequence[Callable[[], Awaitable[object]]] = (),
        expiry_interval: float = EXPIRY_SWEEP_S,
        claim_sweep_interval: float = CLAIM_SWEEP_S,
        listen_wait: float = LISTEN_WAIT_S,
        ranges_interval: float = RANGES_SAVE_S,
        conditions: bool = False,
        sampler: Sampler | None = None,
        on_health: Callable[[Health], None] | None = None,
        loops: Sequence[tuple[str, Callable[[], Awaitable[None]]]] = (),
        trails: bool = False,
        rehearsals: bool = False,
    ) -> None:
        """`conditions`: run v2's condition loops too (the timers, LTP mode's quotes, the
        day ranges' saves), counted in `condition_loops`. `warm`: work done once after
        the engine has started, in the background (start does not wait for it, and a
        failure is only logged): a cache filled before the first request needs it.
        `on_health`: told of each new verdict (the health notices). `loops`: more
        background loops kept alive alongside (the login reminder)."""
        self._engine = engine
        self._expire_due = expire_due
        self._health = health
        self._ping = ping
        self._health_interval = health_interval
        self._changes = changes
        self._expiry_interval = expiry_interval
        self._claim_sweep_interval = claim_sweep_interval
        self._listen_wait = listen_wait
        self._ranges_interval = ranges_interval
        # v2's conditions (time legs, not_before, missed touches): their loops run only
        # with the store's side of them (`Engine(conditions=...)`).
        self._conditions = conditions
        self._sampler = sampler  # the performance history (None: not kept)
        self._trails = trails  # write trailing stops periodically (`Engine.run_trails`)
        self._rehearsals = rehearsals  # rehearse the firing path (`Engine.run_rehearsals`)
        self._warm = tuple(warm)
        # Other loops of the running engine (brackets' fills, the login reminder), each
        # restarted if it raises.
        self._loops = tuple(loops)
        self._loop_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._once: list[asyncio.Task[None]] = []
        self._condition_tasks: list[asyncio.Task[None]] = []
        # Trailing stops' writes, and the firing path's rehearsals.
        self._trail_tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._loaded = asyncio.Event()
        self.last_health: Health | None = None
        self._on_health = on_health

    async def start(self) -> None:
        """Start the engine and the loops (the kill switch is the engine's to honour).

        With a change source the feed listens before the book is loaded, so an
        edit committed during the load is not missed; it is applied after.
        """
        if self._changes is not None:
            self._spawn(self._change_loop(self._changes))
            # Unreachable now: the feed resynchronises when it connects later.
            await woken(self._listening, self._listen_wait)
        with collector_paused(collect=True):
            await self._engine.start()
        self._loaded.set()
        self._spawn(self._expiry_loop())
        self._spawn(self._claim_sweep_loop())
        self._spawn(self._health_loop())
        if self._sampler is not None and self._sampler.interval > 0:
            self._sampler.begin()
            self._spawn(self._sample_loop(self._sampler))
        # Counted apart from the core loops (`running`), like the condition loops.
        self._loop_tasks = [
            asyncio.get_running_loop().create_task(_again(work, event))
            for event, work in self._loops
        ]
        if self._conditions:
            # v2's conditions: time legs and not_before, LTP mode's quotes, the day ranges.
            loop = asyncio.get_running_loop()
            self._condition_tasks = [
                loop.create_task(_again(self._engine.run_timers, "timer_loop_failed")),
                loop.create_task(_again(self._engine.run_quotes, "quote_loop_failed")),
                loop.create_task(self._ranges_loop()),
            ]
        loop = asyncio.get_running_loop()
        if self._trails:
            self._trail_tasks = [
                loop.create_task(_again(self._engine.run_trails, "trail_loop_failed"))
            ]
        if self._rehearsals:
            self._trail_tasks.append(
                loop.create_task(_again(self._engine.run_rehearsals, "rehearsal_loop_failed"))
            )
        # After the book's load, so that its freeze does not wait for this work.
        self._once = [loop.create_task(_warm_up(work)) for work in self._warm]

    async def stop(self) -> None:
        """Cancel the loops (and unfinished warm-up work) and wait for them to end."""
        tasks = (
            self._tasks + self._once + self._condition_tasks + self._trail_tasks + self._loop_tasks
        )
        self._tasks, self._once, self._condition_tasks = [], [], []
        self._trail_tasks, self._loop_tasks = [], []
        await cancel_all(tasks)
        for task in tasks:
            if not task.cancelled():
                task.result()  # a loop that failed says so, as before

    @property
    def running(self) -> int:
        """How many loops are alive."""
        return sum(not task.done() for task in self._tasks)

    @property
    def condition_loops(self) -> int:
        """How many of v2's condition loops are alive (not counted in `running`)."""
        return sum(not task.done() for task in self._condition_tasks)

    @property
    def other_loops(self) -> int:
        """How many of the other loops (`loops`: brackets' fills) are alive."""
        return sum(not task.done() for task in self._loop_tasks)

    @property
    def warming(self) -> int:
        """How many pieces of warm-up work are still under way."""
        return sum(not task.done() for task in self._once)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_interval)
            with _logged("expiry_sweep_failed"):
                for trigger_id in await self._expire_due():
                    await self._engine.refresh(trigger_id)

    async def _claim_sweep_loop(self) -> None:
        """Settle other engines' (or our own abandoned) claims once their lease expires.

        Every half lease, so a SIGKILLed engine's claim is settled within 1.5
        leases; not while the broker session is invalid (settling asks the
        broker's order book), nor while the engine is stopped or disabled.
        """
        while True:
            await asyncio.sleep(self._claim_sweep_interval)
            if self._engine.state is EngineState.RUNNING:
                with _logged("claim_sweep_failed"):
                    await self._engine.settle_expired()

    async def _ranges_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ranges_interval)
            with _logged("day_ranges_save_failed"):
                await self._engine.save_ranges()

    async def _sample_loop(self, sampler: Sampler) -> None:
        while True:
            await asyncio.sleep(sampler.interval)
            with _logged("metrics_sample_failed"):
                await sampler.sample()

    async def _health_loop(self) -> None:
        while True:
            with _logged("health_check_failed"):
                await self._ping()
                health = self._health()
                if health != self.last_health:  # a change is news; the same verdict is not
                    log.info("health", verdict=health.verdict.value, reasons=list(health.reasons))
                    self.last_health = health
                    if self._on_health is not None:
                        self._on_health(health)
            await asyncio.sleep(self._health_interval)

    async def _change_loop(self, changes: Callable[[], ChangeSource]) -> None:
        """Edits by anything (psql, another service, a hosted UI) reach the book.

        `aclosing`: a stop that cancels this loop while it applies a change (not
        while it waits on the feed) still closes the feed and its connection now.
        """
        async with contextlib.aclosing(aiter(changes())) as items:
            async for item in items:
                if isinstance(item, Resync) and not self._listening.is_set():
                    # Listening began before the start-up load: that load is this resync.
                    self._listening.set()
                    continue
                await self._loaded.wait()  # changes made during the load wait for it
                with _logged("change_feed_apply_failed"):
                    if isinstance(item, Resync):
                        # No collection here: with the book loaded it would pause the loop.
                        with collector_paused(collect=False):
                            await self._engine.resync()
                    elif isinstance(item, Change):
                        if item.op is Op.INSERT and self._engine.armed(TriggerId(item.id)):
                            # This engine armed it from that very commit (`Engine.arm`) and a
                            # row is inserted once: reading it back would find the same row
                            # (issue 12: a read on this loop per create).
                            continue
                        await self._engine.refresh(TriggerId(item.id))
                    if isinstance(item, Change) and item.received:
                        self._engine.stats.record_change(time.monotonic() - item.received)


@contextlib.contextmanager
def collector_paused(*, collect: bool) -> Iterator[None]:
    """Load the book with the cyclic collector off, then exempt what is alive from it.

    During a load every collection would rescan every earlier batch (measured
    for 1M rows: 12.4 s -> 8.3 s without them). After it, `gc.freeze` moves
    what is alive now, above all the book, out of the collector's reach for
    good: without it each full collection walks the book on the tick path
    (measured: 1M triggers, tick-to-order p50 159 ms -> 11 ms). Reference
    counting still frees a trigger the moment it leaves the book; only cycles
    among frozen objects would outlive their use, and the book makes none.
    `collect`: one collection first, before the load, while the heap is small.
    Not after it: with a million triggers alive that collection walked them
    all, about 0.5-1 s with the loop stopped, in a start-up that must answer
    health checks throughout (issue 12); what the load itself leaves cyclic
    is little and is frozen with the rest.
    """
    if collect:
        gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        freeze_survivors()


def freeze_survivors() -> None:
    """Exempt everything alive now from the cyclic collector's scans, for good.

    Called after a long-lived load (the book; each day's instrument master:
    a full collection took 72 ms with a 100,000-row dump in memory and
    unfrozen, against 12 ms without the dump). No collection first: with the book loaded it
    would pause the event loop. What else happens to be alive is frozen too;
    reference counting still frees it, and only a cycle among frozen objects
    (a rare request's leftovers, once a day) would outlive its use.
    """
    gc.freeze()


async def _again(loop: Callable[[], Awaitable[None]], event: str) -> None:
    """Run `loop` until it returns; if it raises, log it and start it again."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception(event)
        await asyncio.sleep(RESTART_S)


async def _warm_up(work: Callable[[], Awaitable[object]]) -> None:
    with _logged("warm_up_failed"):
        await work()


@contextlib.contextmanager
def _logged(event: str) -> Iterator[None]:
    """Keep a background loop alive through one failed round, saying what failed."""
    try:
        yield
    except Exception:
        log.exception(event)
