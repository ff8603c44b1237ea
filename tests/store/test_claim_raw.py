"""The claim on the driver's own connection (HMT_CLAIM_STATEMENTS=raw, issue 12): it does
skip SQLAlchemy's execution (on SQLite, all of it in one call on aiosqlite's thread), and a
connection cut while the claim is on its way is `CommitUnknown`, as on the cached path."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiosqlite
import asyncpg
import pytest
from sqlalchemy import event

from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec
from hmt.core.types import Direction
from hmt.kite.segments import divisor_for
from hmt.store.db import CommitUnknown, Database, DbState, create_engine
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.claimer import claim
from tests.support.factories import make_trigger


@pytest.fixture
async def pooled(url: str, clock: Clock) -> AsyncIterator[Database]:
    """As the composition makes it: the claims' own pool (claims `async`)."""
    name = f"hmt-raw-{secrets.token_hex(3)}"
    database = Database(
        create_engine(url, application_name="hmt-test"),
        retries=2,
        backoff_ms=10,
        clock=clock,
        deferred=create_engine(url, application_name=name, deferred_flush=True),
    )
    yield database
    await database.dispose()


@pytest.fixture
def sqlalchemy_executes(pooled: Database) -> Iterator[list[str]]:
    """Every statement SQLAlchemy executes on either pool, as it executes it."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engines = [pooled.engine.sync_engine, pooled._deferred_pool.sync_engine]  # type: ignore[union-attr]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
async def test_the_raw_claim_runs_nothing_through_sqlalchemy(
    pooled: Database, clock: Clock, sqlalchemy_executes: list[str], v2: bool
) -> None:
    """A v1 claim on either store, and a v2 one on SQLite, send nothing through
    SQLAlchemy's execution; the cached path's do (the test can tell the two apart)."""
    raw = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="raw")
    cached = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="cached")
    v2_legs = {"leg_specs": (LegSpec(direction=Direction.AT_OR_ABOVE),)} if v2 else {}
    first, second = make_trigger(**v2_legs), make_trigger(**v2_legs)
    await raw.create(first)
    await raw.create(second)
    sqlalchemy_executes.clear()
    assert await claim(raw, first)
    through_sqlalchemy = list(sqlalchemy_executes)
    assert await claim(cached, second)
    assert any("UPDATE" in sql for sql in sqlalchemy_executes)
    if v2 and pooled.dialect == "postgresql":  # v2 keeps the cached transaction there
        assert any("UPDATE" in sql for sql in through_sqlalchemy)
    else:
        assert through_sqlalchemy == []
    assert (await raw.get("alice", first.id)).status is Status.TRIGGERED


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
async def test_a_sqlite_claim_is_one_call_on_the_driver_thread(
    pooled: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted at aiosqlite itself: on the claims' own pool (the composition's) the raw
    claim is one call on the driver's thread (that pool does not roll back on return:
    every user of it ends its transaction); the cached path's hand-offs are many more;
    the inline claim (the loop's own connection) makes none."""
    calls: list[object] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await real(self, fn, *args, **kwargs)

    raw = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="raw")
    cached = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="cached")
    inline = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims="inline")
    triggers = [make_trigger() for _ in range(6)]
    for trigger in triggers:
        await raw.create(trigger)
    assert await claim(raw, triggers[0])  # both pools' connections made
    assert await claim(cached, triggers[1])
    assert await claim(inline, triggers[4])  # the loop's connection opened
    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    assert await claim(raw, triggers[2])
    by_raw = len(calls)
    calls.clear()
    assert await claim(cached, triggers[3])
    assert by_raw == 1, by_raw
    assert len(calls) >= 6, len(calls)
    calls.clear()
    assert await claim(inline, triggers[5])
    assert calls == []
    assert pooled.loop_fallbacks == 0


@pytest.mark.parametrize("url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("claims", ["raw", "cached"])
async def test_a_connection_cut_mid_claim_is_commit_unknown(
    pooled: Database, clock: Clock, claims: str
) -> None:
    """PostgreSQL: the claim's statement waits on a row lock another session holds; its
    backend is terminated (pg_terminate_backend). The outcome cannot be known from here:
    `CommitUnknown`, the database reported unreachable, never a retry; nothing was
    written, and the next claim on the same pool succeeds on a fresh connection."""
    store = TriggerStore(pooled, clock=clock, divisor_of=divisor_for, claims=claims)
    trigger = make_trigger()
    await store.create(trigger)
    url = pooled.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(url)
    try:
        app = await _application_name(pooled)
        holder = await asyncpg.connect(url)
        await holder.execute("BEGIN")
        await holder.execute(
            "SELECT 1 FROM hmt_gtt_orders WHERE id = $1::uuid FOR UPDATE", trigger.id
        )
        claiming = asyncio.create_task(claim(store, trigger))
        pid = None
        for _ in range(200):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                "AND wait_event_type = 'Lock'",
                app,
            )
            if pid is not None:
                break
            await asyncio.sleep(0.01)
        assert pid is not None, "the claim never waited on the row lock"
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(CommitUnknown):
            await claiming
        assert pooled.health.state is DbState.UNREACHABLE
        await holder.execute("ROLLBACK")
        await holder.close()
        status = await admin.fetchval(
            "SELECT status FROM hmt_gtt_orders WHERE id = $1::uuid", trigger.id
        )
        assert status == Status.ACTIVE.value
        assert await claim(store, trigger)
        assert pooled.health.state is DbState.OK
    finally:
        await admin.close()


async def _application_name(db: Database) -> str:
    """The application_name of the claims' pool's connections."""
    pool = db._deferred_pool
    assert pool is not None
    async with pool.connect() as conn:
        return str((await conn.exec_driver_sql("SHOW application_name")).scalar_one())


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
async def test_the_claims_pool_ends_a_transaction_left_open(pooled: Database) -> None:
    """The SQLite claims' pool does not roll back every connection it takes back (one
    hand-off a claim), but one that comes back with a transaction open is rolled back:
    the next user never finds itself inside someone else's transaction."""
    pool = pooled._deferred_pool
    assert pool is not None
    conn = await pool.connect()
    driver: Any = (await conn.get_raw_connection()).driver_connection
    await driver.execute("BEGIN IMMEDIATE")
    assert driver.in_transaction
    await conn.close()
    conn = await pool.connect()
    again: Any = (await conn.get_raw_connection()).driver_connection
    assert again is driver  # the same connection, back from the pool
    assert not again.in_transaction
    await conn.close()
