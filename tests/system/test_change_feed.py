"""Rows written by another tool with plain SQL reach the running engine (PostgreSQL).

The test holds its own asyncpg connection, as psql or a hosted UI would, and
writes `hmt_gtt_orders` directly: no hmt code on that side. The engine learns of
each change only through LISTEN/NOTIFY (and the resync after a reconnect).
Latencies are printed, not asserted: speed is shown by the benchmarks.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from hmt.core.types import Leg
from hmt.kite.segments import divisor_for
from hmt.kite.tags import broker_tag
from hmt.store.changes import asyncpg_dsn
from tests.support.eventually import eventually
from tests.support.system import System, running_system

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

INFY, RELIANCE = 408065, 738561
SYMBOLS = {INFY: "INFY", RELIANCE: "RELIANCE"}
# Kite allows 10 orders a second and the engine queues the rest: more inserts
# than that in one test would time the throttle, not the feed.
INSERTS = int(os.environ.get("HMT_FEED_INSERTS", "8"))
KILLS = int(os.environ.get("HMT_FEED_KILLS", "5"))
EDITS_PER_KILL = int(os.environ.get("HMT_FEED_EDITS", "40"))

INSERT = """
INSERT INTO hmt_gtt_orders (id, user_id, instrument_token, exchange, tradingsymbol,
    trigger_type, transaction_type, trigger_price_1, quantity, product, order_type)
VALUES (gen_random_uuid(), 'sqluser', $1, 'NSE', $2, 'single', $3, $4, 1, 'CNC', 'MARKET')
RETURNING id::text
"""


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another tool's connection to the engine's database."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def until(predicate: Callable[[], object], within: float = 10.0) -> float:
    """Poll `predicate` tightly; the perf_counter when it first held."""
    await eventually(predicate, within=within, interval=0.0005)
    return time.perf_counter()


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50={statistics.median(ordered) * 1000:.1f}ms p99={p99 * 1000:.1f}ms "
        f"max={ordered[-1] * 1000:.1f}ms (n={len(ordered)})"
    )


async def anchored(system: System) -> None:
    """INFY subscribed and at 1000.00 in the engine before anything is inserted."""
    system.push(INFY, "1000.00")
    await system.create(trigger_price_1="9999.00")
    await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 100_000)


async def test_a_trigger_inserted_with_plain_sql_reaches_the_book_and_fires(
    database_url: str, sql: asyncpg.Connection
) -> None:
    """INSERT by another tool: in the book via NOTIFY, then the next crossing tick orders it."""
    async with running_system(database_url) as system:
        engine = system.runtime.engine
        await anchored(system)
        to_book, to_order = [], []
        for _ in range(INSERTS):
            started = time.perf_counter()
            trigger_id = await sql.fetchval(INSERT, INFY, "INFY", "BUY", Decimal("1010.00"))
            to_book.append(await until(lambda tid=trigger_id: tid in engine.book) - started)
            tag = broker_tag(trigger_id, Leg.FIRST)
            ticked = time.perf_counter()
            system.push(INFY, "1010.00")
            to_order.append(await until(lambda tag=tag: system.orders_tagged(tag)) - ticked)
            record = await system.client.get(f"/triggers/{trigger_id}", headers=system.auth())
            assert record.status_code == 404  # sqluser's trigger, not alice's
            system.push(INFY, "1000.00")
            await eventually(lambda: engine.last_ltp.get(INFY) == 100_000)

        async def placed() -> int:
            return int(
                await sql.fetchval(
                    "SELECT count(*) FROM hmt_gtt_orders "
                    "WHERE user_id = 'sqluser' AND status = 'placed'"
                )
            )

        # The outcome is written after the broker's answer: the last order can be at the
        # simulator a moment before its row says `placed` (seen under CI's load).
        await eventually(lambda: _equal(placed, INSERTS), within=10)
        stats = system.runtime.stats()["tick_to_order_us"]
    print(f"\nplain SQL INSERT -> in the engine's book: {ms(to_book)}")
    print(f"crossing tick pushed -> order in the simulator's book: {ms(to_order)}")
    print(f"engine's own tick-to-order (us): p50={stats['p50']} p99={stats['p99']}")
    assert await placed() == INSERTS


async def _equal(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected


async def test_plain_sql_update_and_delete_reach_the_book(
    database_url: str, sql: asyncpg.Connection
) -> None:
    """A price changed by UPDATE fires at the new price only; a DELETEd row never fires."""
    async with running_system(database_url) as system:
        engine = system.runtime.engine
        await anchored(system)
        moved = await sql.fetchval(INSERT, INFY, "INFY", "BUY", Decimal("1010.00"))
        deleted = await sql.fetchval(INSERT, INFY, "INFY", "BUY", Decimal("1020.00"))
        await until(lambda: moved in engine.book and deleted in engine.book)
        started = time.perf_counter()
        await sql.execute("UPDATE hmt_gtt_orders SET trigger_price_1 = 1050 WHERE id = $1", moved)
        updated = await until(
            lambda: (t := engine.book.get(moved)) is not None and t.trigger_price_1 == 105_000
        )
        await sql.execute("DELETE FROM hmt_gtt_orders WHERE id = $1", deleted)
        gone = await until(lambda: deleted not in engine.book)
        print(
            f"\nplain SQL UPDATE -> book {(updated - started) * 1000:.1f}ms; "
            f"DELETE -> out of the book {(gone - updated) * 1000:.1f}ms"
        )
        system.push(INFY, "1030.00")  # past both old prices, short of the new one
        await eventually(lambda: engine.last_ltp.get(INFY) == 103_000)
        await engine.drain()
        assert system.orders_tagged(broker_tag(moved, Leg.FIRST)) == []
        assert system.orders_tagged(broker_tag(deleted, Leg.FIRST)) == []
        system.push(INFY, "1050.00")
        await eventually(lambda: system.orders_tagged(broker_tag(moved, Leg.FIRST)))
        assert (
            await sql.fetchval("SELECT triggered_price FROM hmt_gtt_orders WHERE id = $1", moved)
        ) == Decimal("1050")


class Edits:
    """Random plain-SQL edits of far-away triggers (none may fire), by another tool."""

    def __init__(self, sql: asyncpg.Connection, rng: random.Random) -> None:
        self.sql, self.rng = sql, rng
        self.kinds: dict[str, int] = {}

    async def one(self) -> None:
        rng = self.rng
        rows = await self.sql.fetch(
            "SELECT id::text, status FROM hmt_gtt_orders WHERE user_id = 'sqluser'"
        )
        kind = rng.choice(["insert", "insert", "price", "pause", "resume", "cancel", "delete"])
        if kind == "insert" or not rows:
            kind = "insert"
            token = rng.choice(list(SYMBOLS))
            side = rng.choice(["BUY", "SELL"])
            # BUY far above, SELL far below any price this test ever trades at.
            price = Decimal(rng.randrange(5000, 9000) if side == "BUY" else rng.randrange(1, 100))
            await self.sql.fetchval(INSERT, token, SYMBOLS[token], side, price)
        else:
            row = rng.choice(rows)
            statement = {
                "price": "UPDATE hmt_gtt_orders SET trigger_price_1 = CASE WHEN "
                "transaction_type = 'BUY' THEN 5000 + $2::int ELSE 1 + $2::int END WHERE id = $1",
                "pause": "UPDATE hmt_gtt_orders SET status = 'paused' WHERE id = $1 AND "
                "$2::int >= 0 AND status = 'active'",
                "resume": "UPDATE hmt_gtt_orders SET status = 'active' WHERE id = $1 AND "
                "$2::int >= 0 AND status = 'paused'",
                "cancel": "UPDATE hmt_gtt_orders SET status = 'cancelled' WHERE id = $1 AND "
                "$2::int >= 0 AND status IN ('active', 'paused')",
                "delete": "DELETE FROM hmt_gtt_orders WHERE id = $1 AND $2::int >= 0",
            }[kind]
            await self.sql.execute(statement, row["id"], rng.randrange(0, 90))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


async def active_rows(sql: asyncpg.Connection) -> dict[str, tuple[int, int | None]]:
    """What the book must hold: every active row's prices in wire units, by id."""
    rows = await sql.fetch(
        "SELECT id::text, instrument_token, trigger_price_1, trigger_price_2 "
        "FROM hmt_gtt_orders WHERE status = 'active'"
    )
    stored = {}
    for row in rows:
        divisor = divisor_for(row["instrument_token"])
        second = row["trigger_price_2"]
        stored[row["id"]] = (
            int(row["trigger_price_1"] * divisor),
            None if second is None else int(second * divisor),
        )
    return stored


def divergences(system: System, stored: dict[str, tuple[int, int | None]]) -> dict[str, Any]:
    """Ids whose book entry (or absence) differs from the stored active set."""
    booked = {t.id: (t.trigger_price_1, t.trigger_price_2) for t in system.runtime.engine.book}
    return {
        key: (booked.get(key), stored.get(key))
        for key in booked.keys() | stored.keys()
        if booked.get(key) != stored.get(key)
    }


async def test_listener_killed_during_edits_leaves_no_divergence(
    database_url: str, sql: asyncpg.Connection
) -> None:
    """RELIABILITY 9: K pg_terminate_backend kills of the listener during N SQL edits."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"\nRELIABILITY 9 seed={seed} kills={KILLS} edits={KILLS * EDITS_PER_KILL}")
    async with running_system(database_url) as system:
        await anchored(system)
        edits = Edits(sql, rng)
        propagation, converge, diverged, killed = [], [], 0, 0
        for _ in range(KILLS):
            # Edits land while the listener is gone: only the resync can bring them in.
            await eventually(lambda: _listening(sql), within=10)
            killed += await sql.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'hmt-listener' AND datname = current_database()"
            )
            burst = rng.randrange(1, EDITS_PER_KILL // 2)
            started = time.perf_counter()
            for _ in range(burst):
                await edits.one()
            diverged += await _quiescent(system, sql, converge, started)
            # Then edits one at a time with the listener up, each timed to the book.
            for _ in range(EDITS_PER_KILL - burst):
                started = time.perf_counter()
                await edits.one()
                diverged += await _quiescent(system, sql, propagation, started)
        orders = len(system.sim.orders())
    print(f"edits by kind={edits.kinds} listener connections killed={killed}")
    print(f"divergences (book vs SELECT ... WHERE status='active') at quiescent points={diverged}")
    print(f"edit -> book with the listener up: {ms(propagation)}")
    print(f"kill + burst of edits -> book equal again (reconnect, resync): {ms(converge)}")
    assert killed >= KILLS
    assert diverged == 0
    assert orders == 0  # every edited trigger is far from the price: nothing may fire


async def _listening(sql: asyncpg.Connection) -> bool:
    return bool(
        await sql.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hmt-listener' "
            "AND datname = current_database()"
        )
    )


async def _quiescent(
    system: System, sql: asyncpg.Connection, times: list[float], started: float
) -> int:
    """Wait until the book equals the active rows; 1 if it never does (a divergence)."""
    stored = await active_rows(sql)  # only this test writes: the rows are settled
    try:
        await eventually(lambda: not divergences(system, stored), within=10, interval=0.0005)
    except AssertionError:
        print(f"divergence: {divergences(system, stored)}")
        return 1
    times.append(time.perf_counter() - started)
    return 0
