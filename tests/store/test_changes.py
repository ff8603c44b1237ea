"""The PostgreSQL change feed: plain-SQL edits arrive in order, and killed connections lose none.

A real server restart is not possible here (the server is shared), so a lost
connection is made with `pg_terminate_backend` on the listener's backend, found
by its application_name; to the listener that is the same event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hmt.store.changes import Change, ChangeFeed, FeedState, Op, Resync, parse
from tests.support.eventually import eventually

INSERT = """
INSERT INTO hmt_gtt_orders (user_id, instrument_token, exchange, tradingsymbol, trigger_type,
    transaction_type, trigger_price_1, quantity, product, order_type)
VALUES ($1, 408065, 'NSE', 'INFY', 'single', 'BUY', 1600.05, 1, 'CNC', 'MARKET')
RETURNING id::text
"""


@pytest.fixture
async def sql(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another client, like psql: plain SQL on its own connection."""
    conn = await asyncpg.connect(pg_url)
    await conn.execute("TRUNCATE hmt_gtt_orders")
    yield conn
    await conn.close()


@contextlib.asynccontextmanager
async def consuming(feed: ChangeFeed) -> AsyncIterator[list[Change | Resync]]:
    items: list[Change | Resync] = []

    async def run() -> None:
        async for item in feed:  # endless: items are appended as they arrive
            items.append(item)  # noqa: PERF401

    task = asyncio.create_task(run())
    try:
        await eventually(lambda: _has(items, Resync))
        yield items
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _has(items: list[Change | Resync], kind: type) -> bool:
    return any(isinstance(item, kind) for item in items)


async def kill(conn: asyncpg.Connection, application_name: str) -> int:
    """Terminate the backends of `application_name`; returns how many."""
    return int(
        await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            application_name,
        )
    )


def test_parse_never_raises() -> None:
    """Garbage on the channel becomes a resync request, never an exception."""
    assert parse('{"op": "update", "id": "x", "user_id": "u"}') == Change(Op.UPDATE, "x", "u")
    assert isinstance(parse('{"op": "truncate"}'), Resync)
    for junk in ("", "null", "[]", '{"op": "drop"}', "{", '{"op": "insert"}'):
        assert isinstance(parse(junk), Resync)


async def test_plain_sql_changes_arrive_in_order(pg_url: str, sql: asyncpg.Connection) -> None:
    """An insert, update and delete made with plain SQL arrive as three changes, in order."""
    feed = ChangeFeed(pg_url, application_name=f"hmt-l-{secrets.token_hex(3)}")
    async with consuming(feed) as items:
        trigger_id = await sql.fetchval(INSERT, "alice")
        await sql.execute("UPDATE hmt_gtt_orders SET quantity = 2 WHERE id = $1::uuid", trigger_id)
        await sql.execute("DELETE FROM hmt_gtt_orders WHERE id = $1::uuid", trigger_id)
        await eventually(lambda: _count(items, Change, 3))
    changes = [item for item in items if isinstance(item, Change)]
    assert changes == [Change(op, trigger_id, "alice") for op in (Op.INSERT, Op.UPDATE, Op.DELETE)]
    assert isinstance(items[0], Resync)


async def _count(items: list[Change | Resync], kind: type, n: int) -> bool:
    return sum(isinstance(item, kind) for item in items) >= n


async def random_edit(sql: asyncpg.Connection, rng: random.Random, ids: list[str]) -> None:
    """Insert, pause, resume, cancel or delete a row, as another client would."""
    choice = rng.random()
    if choice < 0.4 or not ids:
        ids.append(await sql.fetchval(INSERT, rng.choice(["alice", "bob"])))
    elif choice < 0.7:
        await sql.execute(
            "UPDATE hmt_gtt_orders SET status = $2 WHERE id = $1::uuid",
            rng.choice(ids),
            rng.choice(["paused", "active"]),
        )
    elif choice < 0.85:
        await sql.execute(
            "UPDATE hmt_gtt_orders SET status = 'cancelled' WHERE id = $1::uuid", rng.choice(ids)
        )
    else:
        await sql.execute(
            "DELETE FROM hmt_gtt_orders WHERE id = $1::uuid", ids.pop(rng.randrange(len(ids)))
        )


async def test_killed_listener_loses_nothing(pg_url: str, sql: asyncpg.Connection) -> None:
    """RELIABILITY 9: random edits while the listener is killed K times; 0 divergences."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    name = f"hmt-l-{secrets.token_hex(3)}"
    feed = ChangeFeed(pg_url, application_name=name, reconnect_delay=0.05, health_interval=1)
    reader = await asyncpg.connect(pg_url)
    mirror: set[str] = set()
    resyncs = 0

    async def active() -> set[str]:
        return {
            r[0]
            for r in await sql.fetch("SELECT id::text FROM hmt_gtt_orders WHERE status = 'active'")
        }

    async def consume() -> None:
        nonlocal resyncs
        # aclosing: a cancel that lands in this loop's body (not inside the feed) must
        # still close the feed now, not whenever the suspended generator is collected.
        async with contextlib.aclosing(aiter(feed)) as items:
            async for item in items:
                if isinstance(item, Resync):
                    resyncs += 1
                    rows = await reader.fetch(
                        "SELECT id::text FROM hmt_gtt_orders WHERE status = 'active'"
                    )
                    mirror.clear()
                    mirror.update(r[0] for r in rows)
                else:
                    status = await reader.fetchval(
                        "SELECT status FROM hmt_gtt_orders WHERE id = $1::uuid", item.id
                    )
                    (mirror.add if status == "active" else mirror.discard)(item.id)

    task = asyncio.create_task(consume())
    edits = kills = divergences = 0
    ids: list[str] = []
    try:
        await eventually(lambda: _ready(lambda: resyncs >= 1))
        for round_ in range(6):
            for _ in range(40):
                edits += 1
                await random_edit(sql, rng, ids)
                if rng.random() < 0.05:
                    kills += await kill(sql, name)
            if round_ % 2 == 0:
                kills += await kill(sql, name)  # and edit while it is down
                ids.append(await sql.fetchval(INSERT, "alice"))
                edits += 1
            try:
                await eventually(lambda: _same(mirror, active), within=15)
            except AssertionError:
                divergences += 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reader.close()
    print(
        f"seed={seed} edits={edits} listener kills={kills} reconnects={feed.reconnects} "
        f"resyncs={resyncs} divergences={divergences}"
    )
    assert kills >= 3
    assert feed.reconnects >= 1
    assert divergences == 0
    assert feed.state is FeedState.CLOSED


async def _ready(check: object) -> bool:
    return bool(check())  # type: ignore[operator]


async def _same(mirror: set[str], active: object) -> bool:
    return mirror == await active()  # type: ignore[operator]
