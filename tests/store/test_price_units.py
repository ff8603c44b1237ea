"""Revision 0008's stored price units: every write keeps them equal to the prices.

On PostgreSQL the database computes `<price>_units` (price x price_divisor, NULL
unless a whole number) on every write, so each of hmt's write paths, and another
tool's own SQL, leaves them right; the start-up load reads them and falls back to
the price wherever they are NULL or disagree. SQLite keeps them NULL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text, update

from hmt.core.instruments import Instrument
from hmt.core.types import Exchange, InstrumentToken, Leg, OrderType, Side, TriggerType
from hmt.store.db import Database, create_engine
from hmt.store.loading import _PG_QUERY_STORED, PRICE_NAMES, PriceSource, active_triggers
from hmt.store.tables import gtt_orders as t
from hmt.store.triggers import TriggerStore
from tests.store.conftest import TABLES, Clock
from tests.store.test_loading import USDINR, distinct_row, expected_trigger, insert
from tests.store.test_triggers_v2 import NIFTY, v2_trigger
from tests.support.claimer import claim
from tests.support.factories import INFY, make_oco, make_trigger
from tests.support.postgres import admin

INFY_LISTED = Instrument(
    id=InstrumentToken(INFY),
    exchange=Exchange.NSE,
    tradingsymbol="INFY",
    price_divisor=100,
    tick_size=5,
    lot_size=1,
)


def expected_units(price: Decimal | None, divisor: int | None) -> int | None:
    """The rule, in Python: price x divisor where a whole number in int8's range."""
    if price is None or divisor is None:
        return None
    scaled = price * divisor
    return int(scaled) if scaled == int(scaled) and abs(scaled) < 10**18 else None


async def rows(db: Database) -> list[dict[str, Any]]:
    columns = [t.c.id, t.c.price_divisor]
    columns += [t.c[p] for p in PRICE_NAMES] + [t.c[f"{p}_units"] for p in PRICE_NAMES]
    async with db.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(*columns))]


async def assert_units_follow_prices(db: Database) -> int:
    """Every row's units are the rule's (PostgreSQL) or NULL (SQLite); the rows with units."""
    postgresql = db.engine.dialect.name == "postgresql"
    with_units = 0
    for row in await rows(db):
        for p in PRICE_NAMES:
            want = expected_units(row[p], row["price_divisor"]) if postgresql else None
            assert row[f"{p}_units"] == want, (row["id"], p, row[p], row[f"{p}_units"])
            with_units += want is not None
    return with_units


async def test_every_write_path_keeps_the_units_equal_to_the_prices(
    store: TriggerStore, db: Database
) -> None:
    """create, bulk create, a v2 create, an edit of the prices, an edit that drops a price,
    pause, resume, a claim and a cancel, and another tool's INSERT and UPDATE: after each,
    every row's units are its prices' (PostgreSQL), or NULL (SQLite)."""
    single = await store.create(make_trigger(), instrument=INFY_LISTED)
    oco = make_oco(Side.SELL, 150_000, 170_000, order_type=OrderType.LIMIT,
                   limit_price_1=149_500, limit_price_2=170_500)  # fmt: skip
    await store.create(oco)
    await store.create_many([make_trigger(trigger_price_1=155_005), make_trigger()])
    await store.create(v2_trigger(), watch=NIFTY)
    await insert(db, distinct_row(str(uuid.uuid4())))  # another tool's row, CDS units
    await insert(db, distinct_row(str(uuid.uuid4()), price_divisor=None))
    await assert_units_follow_prices(db)

    await store.update("alice", single.trigger.id, {"trigger_price_1": 161_230})
    await store.update(
        "alice",
        oco.id,
        {"trigger_type": TriggerType.SINGLE, "trigger_price_2": None, "limit_price_2": None},
    )
    await assert_units_follow_prices(db)
    await store.pause("alice", single.trigger.id)
    await store.resume("alice", single.trigger.id)
    claimed = await store.get("alice", single.trigger.id)
    assert await claim(store, claimed.trigger, Leg.FIRST, 161_230)
    await store.cancel("alice", oco.id)
    # Another tool edits a price, and on PostgreSQL tries to write units of its own:
    # recomputed (SQLite's are never read).
    postgresql = db.engine.dialect.name == "postgresql"
    async with db.engine.begin() as conn:
        await conn.execute(update(t).values(trigger_price_1=t.c.trigger_price_1 + Decimal("1")))
    await assert_units_follow_prices(db)
    if postgresql:
        async with db.engine.begin() as conn:
            await conn.execute(update(t).values(trigger_price_1_units=7))
    with_units = await assert_units_follow_prices(db)
    if postgresql:
        assert with_units >= 8  # the rule did set units, not only NULLs


@pytest.fixture
async def pg_db(pg_url: str, clock: Clock) -> AsyncIterator[Database]:
    """The PostgreSQL database alone: what this checks has no SQLite counterpart."""
    await admin(f"TRUNCATE {TABLES}", database=pg_url.rsplit("/", 1)[1])
    database = Database(create_engine(pg_url), retries=2, backoff_ms=10, clock=clock)
    yield database
    await database.dispose()


async def _load(db: Database, prices: PriceSource) -> tuple[list[Any], list[str]]:
    found: list[Any] = []
    invalid: list[str] = []
    async for batch in active_triggers(
        db,
        batch_size=2,
        on_invalid=lambda trigger_id, _: invalid.append(trigger_id),
        divisor_of=lambda token: {USDINR: 10_000_000}[token],
        prices=prices,
    ):
        found += batch
    return sorted(found, key=lambda trigger: trigger.id), sorted(invalid)


async def test_units_that_disagree_with_the_price_or_are_missing_are_not_used(
    pg_db: Database,
) -> None:
    """Rows written with the database's triggers disabled (a restore, a replica): units
    NULL, wrong, or left from an earlier price. The stored load converts those rows'
    prices, and loads exactly what the Decimal load does; a row whose units agree is
    sent as units, its price column NULL."""
    ids = sorted(str(uuid.uuid4()) for _ in range(4))
    for trigger_id in ids:
        await insert(pg_db, distinct_row(trigger_id))
    async with pg_db.engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(update(t).where(t.c.id == ids[1]).values(trigger_price_1_units=None))
        await conn.execute(
            update(t).where(t.c.id == ids[2]).values(limit_price_2_units=842_222_223)
        )
        await conn.execute(
            update(t).where(t.c.id == ids[3]).values(trigger_price_1=Decimal("83.5"))
        )
    stored = await _load(pg_db, PriceSource.STORED)
    assert stored == await _load(pg_db, PriceSource.DECIMAL)
    found, invalid = stored
    assert invalid == []
    assert found[0] == expected_trigger(ids[0])
    assert found[2] == expected_trigger(ids[2])  # 842_222_222, from the price
    assert found[3].trigger_price_1 == 835_000_000

    url = pg_db.engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    conn = await asyncpg.connect(url)
    try:
        sent = {r["id"]: r for r in await conn.fetch(_PG_QUERY_STORED, "active")}
    finally:
        await conn.close()
    assert sent[ids[0]]["trigger_price_1"] is None  # units used: no Decimal sent
    assert sent[ids[0]]["trigger_price_1_units"] == 831_234_567
    assert sent[ids[1]]["trigger_price_1"] == Decimal("83.1234567")
    assert sent[ids[2]]["limit_price_2"] == Decimal("84.2222222")
    assert sent[ids[3]]["trigger_price_1"] == Decimal("83.5")
