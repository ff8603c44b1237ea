"""The supervisor: start-up order, loops that survive a failed round, stop, and the collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from hmt.core.types import TriggerId
from hmt.engine.health import Health, Verdict
from hmt.engine.service import EngineState
from hmt.engine.supervisor import Supervisor, collector_paused, freeze_survivors
from hmt.store.changes import Change, Op, Resync
from hmt.waits import within
from tests.support.eventually import eventually

OK = Health(Verdict.OK, ())


class Engine:
    """The engine as the supervisor drives it: start, refresh, resync, settle expired claims."""

    def __init__(self) -> None:
        self.started = False
        self.state = EngineState.STOPPED
        self.sweeps = 0
        self.sweep_failures = 0
        self.collector_on_at_start: bool | None = None
        self.refreshed: list[TriggerId] = []
        self.resyncs = 0
        self.book: set[str] = set()

    async def start(self) -> None:
        self.collector_on_at_start = gc.isenabled()
        self.started = True
        self.state = EngineState.RUNNING

    async def settle_expired(self) -> int:
        self.sweeps += 1
        if self.sweeps <= self.sweep_failures:
            raise OSError("database gone for a moment")
        return 0

    def armed(self, trigger_id: TriggerId) -> bool:
        return trigger_id in self.book

    async def refresh(self, trigger_id: TriggerId) -> None:
        self.refreshed.append(trigger_id)

    async def resync(self) -> None:
        self.resyncs += 1


class Changes:
    """A change feed fed by the test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Change | Resync] = asyncio.Queue()
        self.closed = False

    async def __aiter__(self) -> AsyncGenerator[Change | Resync, None]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.closed = True  # the real feed closes its LISTEN connection here


def supervise(engine: Engine, **parts: Any) -> Supervisor:
    async def nothing_due() -> list[TriggerId]:
        return []

    async def ping() -> None:
        return None

    return Supervisor(
        engine,  # type: ignore[arg-type]
        **{
            "expire_due": nothing_due,
            "health": lambda: OK,
            "ping": ping,
            "health_interval": 0.01,
            "expiry_interval": 0.01,
            "claim_sweep_interval": 0.01,
            **parts,
        },
    )


async def test_start_starts_the_engine_and_the_loops_and_stop_cancels_them() -> None:
    """Start runs the engine's start-up and three loops; stop leaves no loop running."""
    engine = Engine()
    supervisor = supervise(engine)
    await supervisor.start()
    assert engine.started
    assert supervisor.running == 3  # expiry, claim sweep, health
    await eventually(lambda: supervisor.last_health == OK)
    await supervisor.stop()
    assert supervisor.running == 0
    await supervisor.stop()  # a second stop is harmless


class Rehearsing(Engine):
    """An engine with the firing path's rehearsal loop (`Engine.run_rehearsals`)."""

    def __init__(self) -> None:
        super().__init__()
        self.rehearsing = asyncio.Event()
        self.rehearsal_ended = False

    async def run_rehearsals(self) -> None:
        self.rehearsing.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.rehearsal_ended = True


async def test_rehearsals_run_after_start_only_when_asked_and_stop_ends_them() -> None:
    """HMT_FIRE_REHEARSAL_US > 0: the supervisor keeps the rehearsal loop alive beside
    the core loops; 0: the engine never rehearses, as before issue 12."""
    asked, not_asked = Rehearsing(), Rehearsing()
    supervisor = supervise(asked, rehearsals=True)
    await supervisor.start()
    await within(asked.rehearsing.wait(), 5)
    assert supervisor.running == 3  # the core loops, counted as before
    await supervisor.stop()
    assert asked.rehearsal_ended
    quiet = supervise(not_asked)
    await quiet.start()
    await eventually(lambda: quiet.last_health == OK)
    assert not not_asked.rehearsing.is_set()
    await quiet.stop()


async def test_a_failing_expiry_round_keeps_the_sweep_alive() -> None:
    """The store failing one sweep is logged; the next sweep still refreshes what expired."""
    engine, rounds = Engine(), []

    async def flaky() -> list[TriggerId]:
        rounds.append(1)
        if len(rounds) == 1:
            raise OSError("database gone for a moment")
        return [TriggerId("t-expired")] if len(rounds) == 2 else []

    supervisor = supervise(engine, expire_due=flaky)
    await supervisor.start()
    await eventually(lambda: engine.refreshed == ["t-expired"])
    assert supervisor.running == 3
    await supervisor.stop()


async def test_a_failing_claim_sweep_round_keeps_the_sweep_alive() -> None:
    """A sweep that raises is logged and the next one still runs; none while not running."""
    engine = Engine()
    engine.sweep_failures = 1
    supervisor = supervise(engine)
    await supervisor.start()
    await eventually(lambda: engine.sweeps >= 3)
    assert supervisor.running == 3
    engine.state = EngineState.LOGIN_REQUIRED  # settling asks the broker: not without a session
    await asyncio.sleep(0.02)  # let a sweep already past its check finish
    paused_at = engine.sweeps
    await asyncio.sleep(0.05)
    assert engine.sweeps == paused_at
    await supervisor.stop()


async def test_a_failing_health_round_keeps_the_monitor_alive() -> None:
    """A failed ping is logged; later rounds still judge health."""
    engine, pings = Engine(), []

    async def ping() -> None:
        pings.append(1)
        if len(pings) == 1:
            raise OSError("no route to database")

    down = Health(Verdict.DOWN, ("database unreachable",))
    verdicts = iter([down, OK])
    supervisor = supervise(engine, ping=ping, health=lambda: next(verdicts, OK))
    await supervisor.start()
    await eventually(lambda: supervisor.last_health == OK)
    assert len(pings) >= 3  # the failed round, the down one, the ok one
    await supervisor.stop()


async def test_the_change_feed_listens_before_the_load_and_applies_changes_after() -> None:
    """The feed's first resync is the start-up load itself; later items reach the engine."""
    engine, changes = Engine(), Changes()
    changes.queue.put_nowait(Resync("connected"))
    changes.queue.put_nowait(Change(Op.UPDATE, "t-1", "alice"))  # committed during the load
    supervisor = supervise(engine, changes=lambda: changes)
    await supervisor.start()
    await eventually(lambda: engine.refreshed == ["t-1"])
    assert engine.resyncs == 0
    changes.queue.put_nowait(Resync("reconnected"))
    await eventually(lambda: engine.resyncs == 1)
    await supervisor.stop()
    assert supervisor.running == 0


async def test_the_echo_of_a_create_this_engine_armed_is_not_read_back() -> None:
    """An insert whose trigger the engine already holds (armed from that commit) is skipped;
    an insert it does not hold (another engine's API) and every update are read."""
    engine, changes = Engine(), Changes()
    engine.book = {"t-armed"}
    changes.queue.put_nowait(Resync("connected"))
    supervisor = supervise(engine, changes=lambda: changes)
    await supervisor.start()
    for item in (
        Change(Op.INSERT, "t-armed", "alice"),
        Change(Op.INSERT, "t-elsewhere", "bob"),
        Change(Op.UPDATE, "t-armed", "alice"),
    ):
        changes.queue.put_nowait(item)
    await eventually(lambda: engine.refreshed == ["t-elsewhere", "t-armed"])
    await supervisor.stop()


async def test_a_failing_change_keeps_the_feed_alive() -> None:
    """An engine refresh that raises for one change does not end the change loop."""
    engine, changes = Engine(), Changes()
    failing = {"t-bad"}
    original = engine.refresh

    async def refresh(trigger_id: TriggerId) -> None:
        if trigger_id in failing:
            raise RuntimeError("row unreadable")
        await original(trigger_id)

    engine.refresh = refresh  # type: ignore[method-assign]
    changes.queue.put_nowait(Resync("connected"))
    supervisor = supervise(engine, changes=lambda: changes)
    await supervisor.start()
    changes.queue.put_nowait(Change(Op.UPDATE, "t-bad", "alice"))
    changes.queue.put_nowait(Change(Op.UPDATE, "t-good", "alice"))
    await eventually(lambda: engine.refreshed == ["t-good"])
    await supervisor.stop()


async def test_stop_while_a_change_is_applied_closes_the_feed_at_once() -> None:
    """A stop that lands while the engine applies a change still closes the feed there and then."""
    engine, changes = Engine(), Changes()
    applying, release = asyncio.Event(), asyncio.Event()

    async def refresh(trigger_id: TriggerId) -> None:
        applying.set()
        await release.wait()  # never set: the stop cancels the loop right here

    engine.refresh = refresh  # type: ignore[method-assign]
    changes.queue.put_nowait(Resync("connected"))
    supervisor = supervise(engine, changes=lambda: changes)
    await supervisor.start()
    changes.queue.put_nowait(Change(Op.UPDATE, "t-1", "alice"))
    await within(applying.wait(), 5)
    await supervisor.stop()
    assert changes.closed


async def test_an_unreachable_feed_does_not_hold_up_start() -> None:
    """No first resync within the listen wait: the engine starts anyway."""
    engine, changes = Engine(), Changes()
    supervisor = supervise(engine, changes=lambda: changes, listen_wait=0.05)
    await supervisor.start()
    assert engine.started
    await supervisor.stop()


async def test_the_load_runs_with_the_collector_off_and_ends_frozen() -> None:
    """During the engine's start-up the cyclic collector is off; after it, it is on again and
    what the load made is frozen out of its scans."""
    engine = Engine()
    supervisor = supervise(engine)
    gc.unfreeze()
    try:
        await supervisor.start()
        assert engine.collector_on_at_start is False
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        await supervisor.stop()
        gc.unfreeze()


def test_collector_paused_restores_a_disabled_collector_and_survives_errors() -> None:
    """The collector is left as it was found (off stays off), also when the load raises."""
    gc.unfreeze()
    gc.disable()
    try:
        with pytest.raises(ValueError, match="bad batch"), collector_paused(collect=False):
            raise ValueError("bad batch")
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.unfreeze()


async def test_warm_up_runs_after_the_load_in_the_background_and_a_failure_is_logged() -> None:
    """Start returns while warm-up work still waits (it does not hold up the engine); the work
    starts only after the engine's start; one that raises is logged and ends; stop cancels
    unfinished work."""
    engine, gate, done = Engine(), asyncio.Event(), []

    async def fetch_master() -> None:
        assert engine.started  # after the book's load and its freeze
        await gate.wait()
        done.append("master")

    async def failing() -> None:
        raise OSError("broker down")

    async def never() -> None:
        await asyncio.Event().wait()

    supervisor = supervise(engine, warm=[fetch_master, failing, never])
    await supervisor.start()
    assert done == []
    assert supervisor.running == 3  # warm-up is not counted among the loops
    await eventually(lambda: supervisor.warming == 2)  # `failing` has ended
    gate.set()
    await eventually(lambda: done == ["master"])
    assert supervisor.warming == 1
    await supervisor.stop()
    assert supervisor.warming == 0


def test_freeze_survivors_takes_what_is_alive_out_of_the_collectors_scans() -> None:
    """An object alive at freeze_survivors is no longer among the objects the collector scans;
    one made after it still is."""
    gc.unfreeze()
    try:
        master = [[i] for i in range(3)]
        assert any(o is master for o in gc.get_objects())
        freeze_survivors()
        later = [[i] for i in range(3)]
        scanned = gc.get_objects()
        assert not any(o is master for o in scanned)
        assert any(o is later for o in scanned)
    finally:
        gc.unfreeze()


def test_the_start_up_collection_runs_before_the_load_not_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`collect=True` collects once, before the load; none after it (it would walk the book)."""
    events: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *args: events.append("collect") or 0)
    gc.unfreeze()
    try:
        with collector_paused(collect=True):
            events.append("load")
        assert events == ["collect", "load"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
