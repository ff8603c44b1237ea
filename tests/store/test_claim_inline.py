"""The claim on the event loop's own thread (HMT_CLAIM_STATEMENTS=inline, SQLite, issue 12):
no hand-off to aiosqlite's thread, never a wait for the write lock on the loop (another
writer holding it sends the claim to the driver's thread, which waits there), every
failure classified as on the raw path, and the connection closed with the `Database`."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired
from hmt.core.types import Leg
from hmt.kite.segments import divisor_for
from hmt.kite.tags import broker_tag
from hmt.store.db import (
    CommitUnknown,
    Database,
    DbState,
    _own_file,
    _sqlite_transaction,
    create_engine,
)
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.claimer import LEASE, claim
from tests.support.factories import make_trigger

pytestmark = pytest.mark.parametrize("url", ["sqlite"], indirect=True)


@pytest.fixture
async def pooled(url: str, clock: Clock) -> AsyncIterator[Database]:
    """As the composition makes it: the claims' own pool (claims `async`)."""
    database = Database(
        create_engine(url, application_name="hmt-test"),
        retries=2,
        backoff_ms=10,
        clock=clock,
        deferred=create_engine(url, application_name="hmt-test-claims", deferred_flush=True),
    )
    yield database
    await database.dispose()


@pytest.fixture
def inline(pooled: Database, clock: Clock) -> TriggerStore:
    return TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="inline")


@pytest.fixture
def handoffs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call handed to an aiosqlite connection's thread, from now on."""
    calls: list[object] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def kinds(store: TriggerStore, trigger_id: str) -> list[EventKind]:
    return [e.kind for e in await store.history("alice", trigger_id)]


def holder(pooled: Database) -> sqlite3.Connection:
    """Another writer: a connection of its own to the same file, holding nothing yet."""
    path = pooled._loop_file
    assert path is not None
    return sqlite3.connect(path, isolation_level=None, timeout=0)


async def test_an_inline_claim_makes_no_hand_off(
    pooled: Database, inline: TriggerStore, handoffs: list[object]
) -> None:
    """Counted at aiosqlite itself: the raw claim is one call on its thread, the inline
    claim none (against the raw path's, measured in the same test)."""
    raw = TriggerStore(pooled, divisor_of=divisor_for, claims="raw", clock=inline.clock)
    triggers = [make_trigger() for _ in range(4)]
    for trigger in triggers:
        await inline.create(trigger)
    assert await claim(inline, triggers[0])  # the connection opened
    assert await claim(raw, triggers[1])  # the claims' pool's connection made
    handoffs.clear()
    assert await claim(raw, triggers[2])
    assert len(handoffs) == 1, handoffs
    handoffs.clear()
    assert await claim(inline, triggers[3])
    assert handoffs == []
    assert pooled.loop_fallbacks == 0
    assert (await inline.get("alice", triggers[3].id)).status is Status.TRIGGERED
    assert await kinds(inline, triggers[3].id) == [
        EventKind.CREATED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
    ]


async def test_a_sync_claim_waits_for_the_disk_on_the_driver_thread_not_the_loop(
    pooled: Database, inline: TriggerStore, handoffs: list[object]
) -> None:
    """HMT_CLAIM_DURABILITY=sync: its commit's fsync would hold the loop, so an inline
    store hands that claim to aiosqlite's thread, as `raw` does (its transaction there at
    FULL; the main pool's reset on return is the other hand-off)."""
    trigger = make_trigger()
    await inline.create(trigger)
    handoffs.clear()
    won = await inline.claim(
        Fired(trigger, Leg.FIRST, 160_000),
        broker_tag(trigger.id, Leg.FIRST),
        owner="engine-a",
        lease=LEASE,
        sending=True,
        durable=True,
    )
    assert won
    on_thread = [h for h in handoffs if getattr(h, "func", None) is _sqlite_transaction]
    assert len(on_thread) == 1, handoffs
    assert on_thread[0].args[2] == "FULL"  # type: ignore[attr-defined]
    assert (await inline.get("alice", trigger.id)).status is Status.TRIGGERED


@pytest.mark.parametrize("other", ["rolls back", "cancels first"])
async def test_a_held_write_lock_sends_the_claim_to_the_driver_thread(
    pooled: Database, inline: TriggerStore, other: str
) -> None:
    """Another connection holds the write lock (BEGIN IMMEDIATE) when the claim comes: the
    claim goes to the driver's thread at once and waits there, while the loop runs on (a
    task keeps counting); once the lock is released it succeeds, or, if the other writer
    cancelled the trigger first, claims nothing."""
    trigger, warm = make_trigger(), make_trigger()
    await inline.create(trigger)
    await inline.create(warm)
    assert await claim(inline, warm)  # the loop's connection is open: no first-use path
    other_writer = holder(pooled)
    try:
        other_writer.execute("BEGIN IMMEDIATE")
        if other == "cancels first":
            other_writer.execute(
                "UPDATE hmt_gtt_orders SET status = 'cancelled' WHERE status = 'active'"
            )
        claiming = asyncio.create_task(claim(inline, trigger))
        ticks = 0

        async def count() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        counting = asyncio.create_task(count())
        for _ in range(100_000):  # until the claim has met the lock: no clock involved
            if pooled.loop_fallbacks:
                break
            await asyncio.sleep(0)
        assert pooled.loop_fallbacks == 1
        seen = ticks
        for _ in range(50):
            await asyncio.sleep(0)
        assert ticks > seen  # the loop ran on while the claim waited for the lock
        assert not claiming.done()  # it waits on the driver's thread
        if other == "cancels first":
            other_writer.execute("COMMIT")
        else:
            other_writer.execute("ROLLBACK")
        won = await claiming
        counting.cancel()
    finally:
        other_writer.close()
    record = await inline.get("alice", trigger.id)
    if other == "cancels first":
        assert not won
        assert record.status is Status.CANCELLED
        assert EventKind.CLAIMED not in await kinds(inline, trigger.id)
    else:
        assert won
        assert record.status is Status.TRIGGERED
    assert pooled.health.state is DbState.OK


class _Failing:
    """The loop's connection, with one of its calls failing once as `error`."""

    def __init__(self, real: sqlite3.Connection, call: str, error: Exception) -> None:
        self.real, self.call, self.error = real, call, error
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name != self.call or self.failed:
            return attribute

        def failing(*args: Any) -> Any:
            self.failed = True
            raise self.error

        return failing


async def _with_failing(
    pooled: Database, inline: TriggerStore, call: str, error: Exception
) -> tuple[_Failing, str]:
    """A trigger created, the loop's connection open and made to fail once at `call`."""
    warm, trigger = make_trigger(), make_trigger()
    await inline.create(warm)
    await inline.create(trigger)
    assert await claim(inline, warm)
    real = pooled._loop_conn
    assert real is not None
    failing = _Failing(real, call, error)
    pooled._loop_conn = failing  # type: ignore[assignment]
    return failing, trigger.id


async def test_a_failed_commit_is_commit_unknown_and_releases_the_lock(
    pooled: Database, inline: TriggerStore
) -> None:
    """A transient failure of the COMMIT (SQLite still busy) is `CommitUnknown`, never
    retried, the database reported unreachable, as on the raw path; the transaction it
    left open is rolled back at once (else it held the write lock against every other
    writer), nothing was written, and the next claim succeeds."""
    failing, trigger_id = await _with_failing(
        pooled, inline, "commit", sqlite3.OperationalError("database is locked")
    )
    trigger = (await inline.get("alice", trigger_id)).trigger
    with pytest.raises(CommitUnknown):
        await claim(inline, trigger)
    assert failing.failed
    assert not failing.real.in_transaction
    assert pooled.health.state is DbState.UNREACHABLE
    assert (await inline.get("alice", trigger_id)).status is Status.ACTIVE
    assert await claim(inline, trigger)
    assert pooled.health.state is DbState.OK
    assert pooled.loop_fallbacks == 0


async def test_a_transient_failure_before_commit_is_rolled_back_and_retried(
    pooled: Database, inline: TriggerStore
) -> None:
    """The events' INSERT fails once with the connection lost: the claim's UPDATE is rolled
    back with it, the connection closed and opened again, and the retry claims once (one
    `claimed` in the history)."""
    failing, trigger_id = await _with_failing(
        pooled,
        inline,
        "executemany",
        sqlite3.ProgrammingError("Cannot operate on a closed database."),
    )
    trigger = (await inline.get("alice", trigger_id)).trigger
    assert await claim(inline, trigger)
    assert failing.failed
    assert pooled._loop_conn is not None
    assert pooled._loop_conn is not failing
    assert (await kinds(inline, trigger_id)).count(EventKind.CLAIMED) == 1
    assert pooled.health.state is DbState.OK
    assert pooled.loop_fallbacks == 0


async def test_a_statement_failure_before_commit_is_rolled_back_and_raised(
    pooled: Database, inline: TriggerStore
) -> None:
    """Not a connection failure (a constraint, say): rolled back and raised, not retried."""
    failing, trigger_id = await _with_failing(
        pooled, inline, "executemany", sqlite3.IntegrityError("CHECK constraint failed")
    )
    trigger = (await inline.get("alice", trigger_id)).trigger
    with pytest.raises(Exception, match="CHECK constraint failed"):
        await claim(inline, trigger)
    assert not failing.real.in_transaction
    assert (await inline.get("alice", trigger_id)).status is Status.ACTIVE
    assert await claim(inline, trigger)


async def test_the_loop_connection_never_checkpoints_the_pool_does(
    pooled: Database, inline: TriggerStore
) -> None:
    """The loop's connection has no autocheckpoint (a checkpoint copies pages and may fsync:
    not on the loop); the pool's connections keep SQLite's default and checkpoint at their
    commits: the WAL is restarted afterwards (its header's checkpoint sequence moves)."""
    triggers = [make_trigger() for _ in range(4)]
    for trigger in triggers:
        await inline.create(trigger)
    untouched = make_trigger()
    await inline.create(untouched)
    assert await claim(inline, triggers[0])
    connection = pooled._loop_conn
    assert connection is not None
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    async def pool_autocheckpoint(conn: Any) -> int:
        return int((await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar())

    assert await pooled.transaction(pool_autocheckpoint, write=False) == 1000
    wal = Path(f"{pooled._loop_file}-wal")
    before = _checkpoint_sequence(wal)
    assert await claim(inline, triggers[1])
    assert await claim(inline, triggers[2])
    assert _checkpoint_sequence(wal) == before  # claims alone never restart the WAL

    async def write_and_checkpoint(conn: Any) -> None:
        # The default threshold, 1000 pages, lowered so that this one commit passes it.
        await conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1")
        await conn.exec_driver_sql(  # a change (SQLite writes no page for a no-op UPDATE)
            "UPDATE hmt_gtt_orders SET attempts = attempts + 1 WHERE id = ?",
            (uuid.UUID(untouched.id).hex,),
        )

    await pooled.transaction(write_and_checkpoint)
    assert await claim(inline, triggers[3])  # the first write after a checkpoint restarts it
    assert _checkpoint_sequence(wal) == before + 1


def _checkpoint_sequence(wal: Path) -> int:
    """The WAL header's checkpoint sequence number: one more each time the WAL restarts."""
    with wal.open("rb") as file:
        header = file.read(32)
    return int(struct.unpack(">I", header[12:16])[0])


async def test_dispose_closes_the_loop_connection(pooled: Database, inline: TriggerStore) -> None:
    trigger = make_trigger()
    await inline.create(trigger)
    assert await claim(inline, trigger)
    connection = pooled._loop_conn
    assert connection is not None
    await pooled.dispose()
    assert pooled._loop_conn is None
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")


async def test_another_thread_uses_the_driver_thread(
    pooled: Database, inline: TriggerStore, handoffs: list[object]
) -> None:
    """The connection belongs to the thread that opened it: a claim from another thread's
    loop goes to the driver's thread, and succeeds there."""
    first, second = make_trigger(), make_trigger()
    await inline.create(first)
    await inline.create(second)
    assert await claim(inline, first)
    elsewhere = Database(
        create_engine(str(pooled.engine.url)), retries=2, backoff_ms=10, clock=pooled.clock
    )
    elsewhere._loop_conn, elsewhere._loop_thread = pooled._loop_conn, pooled._loop_thread
    other = TriggerStore(elsewhere, clock=inline.clock, divisor_of=divisor_for, claims="inline")

    async def in_thread() -> bool:
        try:
            return await claim(other, second)
        finally:
            elsewhere._loop_conn = None  # not its own to close
            await elsewhere.dispose()

    handoffs.clear()
    assert await asyncio.to_thread(asyncio.run, in_thread())
    assert handoffs  # on the driver's thread
    assert elsewhere.loop_fallbacks == 0


@pytest.mark.parametrize(
    ("url_text", "expected"),
    [
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:hmt.db?cache=shared&uri=true", None),
        ("sqlite:///file:/tmp/hmt.db?mode=ro&uri=true", None),
        ("sqlite:////srv/hmt/hmt.db", "/srv/hmt/hmt.db"),
        ("sqlite:////srv/hmt/hmt.db?timeout=3", "/srv/hmt/hmt.db"),
    ],
)
def test_which_databases_a_second_connection_can_see(
    url: str, url_text: str, expected: str | None
) -> None:
    """`:memory:` is the pool's connection's alone, and a URI filename may hide memory, a
    read-only open or another VFS: those claim on the driver's thread."""
    assert _own_file(create_engine(url_text)) == expected


async def test_an_in_memory_database_claims_on_the_driver_thread(
    url: str, handoffs: list[object]
) -> None:
    """No second connection could see it: the transaction runs on the driver's thread."""
    memory = Database(create_engine("sqlite://"), retries=0)
    try:
        async with memory.engine.connect() as conn:  # made, and its settings applied
            await conn.exec_driver_sql("SELECT 1")
        handoffs.clear()
        assert await memory.on_loop_thread(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
        assert handoffs  # the transaction on the driver's thread (and the pool's reset)
        assert memory._loop_conn is None
    finally:
        await memory.dispose()


def test_a_relative_path_is_made_absolute(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(url.removeprefix("sqlite:///")).parent
    monkeypatch.chdir(folder)
    assert _own_file(create_engine("sqlite:///hmt.db")) == str(folder / "hmt.db")
