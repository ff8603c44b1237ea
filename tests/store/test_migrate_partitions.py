"""Revision 0010 (each trigger's cluster partition) on both stores: rows written before it
get the partition of their watched instrument, the change feed's trigger is back on, and
down and up again is clean."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hmt.core.partitions import DEFAULT_PARTITIONS, partition_of
from hmt.store import migrate
from hmt.store.db import create_engine
from tests.support.postgres import private_database

ROW = """
INSERT INTO hmt_gtt_orders (id, user_id, instrument_token, exchange, tradingsymbol,
    trigger_type, transaction_type, trigger_price_1, quantity, product, order_type, status,
    price_divisor, watch_token)
VALUES (:id, 'alice', :token, 'NSE', 'INFY', 'single', 'BUY', 1600, 5, 'CNC', 'MARKET',
    :status, 100, :watch)
"""
# (instrument_token, watch_token, status): the watched one decides, whatever the status.
ROWS = [(408065, None, "active"), (738561, None, "paused"), (408065, 256265, "active")]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'partitions.db'}"
        return
    with private_database("hmt_mig10") as url:
        yield url


async def test_rows_before_the_revision_get_their_partition(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HMT_CLUSTER_PARTITIONS", raising=False)
    engine = create_engine(empty_url)
    try:
        await migrate.upgrade(engine, "0009")
        ids = [str(uuid.uuid4()) for _ in ROWS]
        async with engine.begin() as conn:
            for trigger_id, (token, watch, status) in zip(ids, ROWS, strict=True):
                await conn.execute(
                    text(ROW), {"id": trigger_id, "token": token, "watch": watch, "status": status}
                )
        await migrate.upgrade(engine)

        async def partitions() -> dict[str, int | None]:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT id, partition FROM hmt_gtt_orders"))
                return {str(r.id): r.partition for r in rows}

        expected = {
            trigger_id: partition_of(watch or token, DEFAULT_PARTITIONS)
            for trigger_id, (token, watch, _) in zip(ids, ROWS, strict=True)
        }
        assert await partitions() == expected
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                enabled = await conn.scalar(
                    text(
                        "SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = "
                        "'hmt_gtt_orders'::regclass AND tgname = 'hmt_gtt_orders_notify'"
                    )
                )
            assert enabled == "O"  # the change feed's trigger is on again
        await migrate.downgrade(engine, "0009")
        await migrate.upgrade(engine)
        assert await partitions() == expected
    finally:
        await engine.dispose()
