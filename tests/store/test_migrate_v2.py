"""Revision 0003 (trigger model v2) on both stores: SQLite's rebuild keeps every CHECK and
index, the new rules hold, and a row written at 0002 reads back unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import CheckConstraint, Connection, Uuid, bindparam, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.tables import metadata
from hmt.store.triggers import TriggerStore
from tests.support.postgres import private_database

TRIGGER_ID = "5f0c2a1e-8d4b-4c3a-9e2f-0a1b2c3d4e5f"
PLACED_ID = "6a1d3b2f-9e5c-4d4b-8f3a-1b2c3d4e5f60"
AT = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
EXPIRES = datetime(2026, 12, 31, 10, 0, tzinfo=UTC)

V1_ROW = """
INSERT INTO hmt_gtt_orders (id, user_id, instrument_token, exchange, tradingsymbol,
    trigger_type, transaction_type, trigger_price_1, trigger_price_2, quantity, product,
    order_type, limit_price_1, limit_price_2, status, attempts, created_at, updated_at,
    expires_at, price_divisor, tick_size, lot_size)
VALUES (:id, 'alice', 408065, 'NSE', 'INFY', 'oco', 'SELL', :p1, :p2, 5, 'CNC', 'LIMIT',
    :l1, :l2, :status, :attempts, :at, :at, :expires, 100, :tick, 1)
"""
EVENT_ROW = """
INSERT INTO hmt_trigger_events (trigger_id, user_id, kind, at, payload)
VALUES (:id, 'alice', 'created', :at, :payload)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'v2.db'}"
        return
    with private_database("hmt_mig3") as url:
        yield url


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    with private_database("hmt_mig3") as url:
        yield url


def _model_checks(table: str) -> dict[str, str]:
    """tables.py's CHECKs of `table`: name -> rule."""
    return {
        str(c.name): str(c.sqltext)
        for c in metadata.tables[table].constraints
        if isinstance(c, CheckConstraint)
    }


async def _db_checks(engine: AsyncEngine, table: str) -> dict[str, str]:
    def read(conn: Connection) -> dict[str, str]:
        return {c["name"]: c["sqltext"] for c in inspect(conn).get_check_constraints(table)}

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def _index_sql(engine: AsyncEngine, name: str) -> str:
    """The database's own definition of index `name`."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
        found = (await conn.execute(text(query), {"name": name})).scalar_one_or_none()
    assert found is not None, f"index {name} is missing"
    return str(found)


async def _insert(engine: AsyncEngine, statement: str, **values: Any) -> None:
    # The id as hmt binds it (SQLite keeps a uuid as 32 hex digits).
    query = text(statement).bindparams(bindparam("id", type_=Uuid(as_uuid=False)))
    async with engine.begin() as conn:
        await conn.execute(query, values)


def _v1_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": TRIGGER_ID,
        "p1": "1500.05",
        "p2": "1700.1",
        "l1": "1499.5",
        "l2": "1700",
        "status": "active",
        "attempts": 0,
        "at": AT.replace(tzinfo=None),
        "expires": None,
        "tick": "0.05",
    }
    return values | overrides


async def test_every_check_and_index_survives_the_rebuild(empty_url: str) -> None:
    """At 0003 the triggers' and events' CHECKs are tables.py's (SQLite: rule for rule;
    PostgreSQL, which rewrites the rule's text: by name), and the indexes are intact,
    the partial one still partial; down to 0002 and up again gives the same."""
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine)
        for _ in range(2):
            for table in ("hmt_gtt_orders", "hmt_trigger_events", "hmt_trigger_orders"):
                wanted, found = _model_checks(table), await _db_checks(engine, table)
                assert set(found) == set(wanted), table
                if engine.dialect.name == "sqlite":
                    assert found == wanted, table
            active = await _index_sql(engine, "ix_hmt_gtt_orders_active")
            assert "(instrument_token, status)" in active
            assert "WHERE" in active
            assert "'active'" in active
            assert "(user_id, created_at)" in await _index_sql(engine, "ix_hmt_gtt_orders_user")
            assert "(trigger_id, id)" in await _index_sql(engine, "ix_hmt_trigger_events_trigger")
            await migrate.check(engine)
            await migrate.downgrade(engine, "0002")
            assert "on_gap" not in str(await _db_checks(engine, "hmt_gtt_orders"))
            await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("user_id", "''"),
        ("status", "'gone'"),
        ("trigger_type", "'gtt'"),
        ("transaction_type", "'HOLD'"),
        ("product", "'BO'"),
        ("order_type", "'STOP'"),
        ("quantity", "0"),
        ("triggered_leg", "3"),
        ("attempts", "-1"),
        ("on_gap", "'maybe'"),
    ],
)
async def test_each_check_still_refuses_what_it_refused(
    empty_url: str, column: str, value: str
) -> None:
    """Each rule of the trigger table is enforced after the upgrade, not only named."""
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine)
        await _insert(engine, V1_ROW, **_v1_values())
        async with engine.connect() as conn:
            with pytest.raises(IntegrityError):
                await conn.execute(text(f"UPDATE hmt_gtt_orders SET {column} = {value}"))
    finally:
        await engine.dispose()


async def test_the_new_rules_admit_v2_values(empty_url: str) -> None:
    """SL and SL-M orders, a time leg's NULL price, on_gap and the missed_touch event fit."""
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine)
        await _insert(engine, V1_ROW, **_v1_values())
        async with engine.begin() as conn:
            for order_type in ("SL", "SL-M"):
                await conn.execute(text(f"UPDATE hmt_gtt_orders SET order_type = '{order_type}'"))
            await conn.execute(
                text("UPDATE hmt_gtt_orders SET trigger_price_1 = NULL, on_gap = 'skip'")
            )
            await conn.execute(
                text(
                    "INSERT INTO hmt_trigger_events (trigger_id, user_id, kind, at, payload) "
                    "VALUES (:id, 'alice', 'missed_touch', :at, '{}')"
                ),
                {"id": TRIGGER_ID, "at": AT.replace(tzinfo=None)},
            )
            with pytest.raises(IntegrityError):
                await conn.execute(text("UPDATE hmt_trigger_events SET kind = 'bogus'"))
    finally:
        await engine.dispose()


async def test_postgresql_keeps_its_change_feed_and_guards_the_new_user_table(
    postgresql_url: str,
) -> None:
    """The NOTIFY triggers are untouched; hmt_trigger_orders has RLS like the other user tables."""
    engine = create_engine(postgresql_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            notify = await conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'hmt_gtt_orders'::regclass "
                    "AND NOT tgisinternal ORDER BY tgname"
                )
            )
            assert [r[0] for r in notify] == [
                "hmt_gtt_orders_notify",
                "hmt_gtt_orders_notify_truncate",
                "hmt_gtt_orders_price_units",  # revision 0008's stored units
            ]
            rls = await conn.execute(
                text(
                    "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN "
                    "('hmt_gtt_orders', 'hmt_trigger_events', 'hmt_trigger_orders')"
                )
            )
            assert dict(rls.all()) == {
                "hmt_gtt_orders": True,
                "hmt_trigger_events": True,
                "hmt_trigger_orders": True,
            }
            policy = await conn.execute(
                text("SELECT qual, with_check FROM pg_policies WHERE tablename = :t"),
                {"t": "hmt_trigger_orders"},
            )
            qual, check = policy.one()
            assert "hmt.user_id" in qual
            assert "hmt.user_id" in check
    finally:
        await engine.dispose()


async def test_a_v1_row_written_at_0002_reads_back_unchanged_at_0003(empty_url: str) -> None:
    """Rows and events written before the upgrade keep every value; the new columns are
    NULL (the v1 meaning of each); the store reads them as the v1 triggers they were."""
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine, "0002")
        await _insert(engine, V1_ROW, **_v1_values(expires=EXPIRES.replace(tzinfo=None)))
        await _insert(
            engine,
            V1_ROW,
            **_v1_values(id=PLACED_ID, status="placed", attempts=2, l1=None, l2=None, tick=None),
        )
        await _insert(engine, EVENT_ROW, id=TRIGGER_ID, at=AT.replace(tzinfo=None), payload="{}")
        async with engine.connect() as conn:
            before = {
                str(r._mapping["id"]): dict(r._mapping)
                for r in await conn.execute(text("SELECT * FROM hmt_gtt_orders"))
            }
            events_before = (await conn.execute(text("SELECT * FROM hmt_trigger_events"))).all()
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            after = {
                str(r._mapping["id"]): dict(r._mapping)
                for r in await conn.execute(text("SELECT * FROM hmt_gtt_orders"))
            }
            events_after = (await conn.execute(text("SELECT * FROM hmt_trigger_events"))).all()
        assert events_after == events_before
        new_columns = (
            "watch_token",
            "watch_exchange",
            "watch_tradingsymbol",
            "watch_price_divisor",
            "legs",
            "not_before",
            "on_gap",
        )
        for trigger_id, row in before.items():
            assert {k: v for k, v in after[trigger_id].items() if k in row} == row
            assert {k: after[trigger_id][k] for k in new_columns} == dict.fromkeys(new_columns)
        # The next event's id follows the old ones (SQLite's rebuild kept the rowid).
        await _insert(engine, EVENT_ROW, id=TRIGGER_ID, at=AT.replace(tzinfo=None), payload="{}")
        async with engine.connect() as conn:
            ids = [r[0] for r in await conn.execute(text("SELECT id FROM hmt_trigger_events"))]
        assert sorted(ids) == [ids[0], ids[0] + 1]
    finally:
        await engine.dispose()

    database = Database(create_engine(empty_url), retries=0, backoff_ms=1)
    try:
        store = TriggerStore(database)
        record = await store.get("alice", TRIGGER_ID)
        assert record.trigger == Trigger(
            id=TriggerId(TRIGGER_ID),
            user_id=UserId("alice"),
            instrument_token=InstrumentToken(408065),
            exchange=Exchange.NSE,
            tradingsymbol="INFY",
            trigger_type=TriggerType.OCO,
            side=Side.SELL,
            trigger_price_1=150_005,
            trigger_price_2=170_010,
            quantity=5,
            product=Product.CNC,
            order_type=OrderType.LIMIT,
            limit_price_1=149_950,
            limit_price_2=170_000,
            status=Status.ACTIVE,
            expires_at=EXPIRES,
            price_divisor=100,
        )
        assert record.trigger.is_v1
        assert (record.tick_size, record.lot_size, record.attempts) == (5, 1, 0)
        assert record.created_at == AT
        placed = await store.get("alice", PLACED_ID)
        assert placed.status is Status.PLACED
        assert placed.attempts == 2
        assert placed.trigger.limit_price_1 is None
        assert placed.trigger.is_v1
        loaded = [trigger async for batch in store.stream_active() for trigger in batch]
        assert loaded == [record.trigger]
    finally:
        await database.dispose()
