"""Revision 0011 (several accounts) on both stores: a v1 row written before it reads back
unchanged with the default account (NULL), the accounts table exists, and down and up
again is clean."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Uuid, bindparam, inspect, text

from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore
from tests.support.postgres import private_database

ROW = """
INSERT INTO hmt_gtt_orders (id, user_id, instrument_token, exchange, tradingsymbol,
    trigger_type, transaction_type, trigger_price_1, quantity, product, order_type, status)
VALUES (:id, 'alice', 408065, 'NSE', 'INFY', 'single', 'BUY', 1600, 5, 'CNC', 'MARKET',
    'active')
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'accounts.db'}"
        return
    with private_database("hmt_mig11") as url:
        yield url


async def test_a_v1_row_keeps_the_default_account(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine, "0010")
        trigger_id = str(uuid.uuid4())
        async with engine.begin() as conn:
            # The id as hmt writes it (SQLite: 32 hex digits), so `get` finds the row.
            row = text(ROW).bindparams(bindparam("id", type_=Uuid(as_uuid=False)))
            await conn.execute(row, {"id": trigger_id})
        await migrate.upgrade(engine)

        def tables(sync: object) -> set[str]:
            return set(inspect(sync).get_table_names())

        async with engine.connect() as conn:
            assert "hmt_accounts" in await conn.run_sync(tables)
            account = await conn.scalar(text("SELECT account FROM hmt_gtt_orders"))
        assert account is None  # NULL: the default account
        store = TriggerStore(Database(engine), divisor_of=lambda token: 100)
        record = await store.get("alice", trigger_id)
        assert record.trigger.account is None
        assert record.trigger.trigger_price_1 == 160_000  # read as before: paise
        loaded = [t async for batch in store.stream_active() for t in batch]
        assert [(t.id, t.account) for t in loaded] == [(trigger_id, None)]
        await migrate.downgrade(engine, "0010")
        async with engine.connect() as conn:
            assert "hmt_accounts" not in await conn.run_sync(tables)
            count = await conn.scalar(text("SELECT count(*) FROM hmt_gtt_orders"))
        assert count == 1
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.head() == "0011"
    finally:
        await engine.dispose()
