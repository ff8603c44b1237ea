"""Revision 0008 (stored price units) on both stores: rows written before it are backfilled
on PostgreSQL (NULL on SQLite), the change feed's trigger is back on, and down and up again
is clean."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from hmt.store import migrate
from hmt.store.db import create_engine
from tests.store.test_price_units import expected_units
from tests.support.postgres import private_database

ROW = """
INSERT INTO hmt_gtt_orders (id, user_id, instrument_token, exchange, tradingsymbol,
    trigger_type, transaction_type, trigger_price_1, trigger_price_2, quantity, product,
    order_type, limit_price_1, limit_price_2, status, price_divisor)
VALUES (:id, 'alice', 408065, 'NSE', 'INFY', 'oco', 'SELL', :p1, :p2, 5, 'CNC', 'LIMIT',
    :l1, :l2, :status, :divisor)
"""
# (trigger_price_1, trigger_price_2, limit_price_1, limit_price_2, divisor, status)
ROWS = [
    ("1600.05", "1700", "1599.5", "1700.5", 100, "active"),
    ("1600.055", None, None, None, 100, "active"),  # half a paisa: no units
    ("1600.05", None, None, None, None, "active"),  # no divisor (another tool's row)
    ("83.1234567", "84.7654321", None, None, 10_000_000, "placed"),  # every status
]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'units.db'}"
        return
    with private_database("hmt_mig8") as url:
        yield url


async def test_rows_before_the_revision_get_their_units_and_down_up_is_clean(
    empty_url: str,
) -> None:
    engine = create_engine(empty_url)
    postgresql = engine.dialect.name == "postgresql"
    try:
        await migrate.upgrade(engine, "0003")
        ids = [str(uuid.uuid4()) for _ in ROWS]
        async with engine.begin() as conn:
            for trigger_id, (p1, p2, l1, l2, divisor, status) in zip(ids, ROWS, strict=True):
                values = {"id": trigger_id, "p1": p1, "p2": p2, "l1": l1, "l2": l2}
                if postgresql:
                    values = {
                        k: Decimal(v) if v is not None and k != "id" else v
                        for k, v in values.items()
                    }
                await conn.execute(text(ROW), {**values, "divisor": divisor, "status": status})
        await migrate.upgrade(engine)
        names = ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
        async with engine.connect() as conn:
            found = {
                str(r.id): r._mapping
                for r in await conn.execute(
                    text(
                        "SELECT id, "
                        + ", ".join(f"{n}_units" for n in names)
                        + " FROM hmt_gtt_orders"
                    )
                )
            }
            enabled = (
                (
                    await conn.execute(
                        text(
                            "SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = "
                            "'hmt_gtt_orders'::regclass AND NOT tgisinternal ORDER BY tgname"
                        )
                    )
                ).all()
                if postgresql
                else []
            )
        for trigger_id, (*prices, divisor, _) in zip(ids, ROWS, strict=True):
            want = [
                expected_units(None if p is None else Decimal(p), divisor) if postgresql else None
                for p in prices
            ]
            assert [found[trigger_id][f"{n}_units"] for n in names] == want
        if postgresql:
            assert found[ids[0]]["trigger_price_1_units"] == 160_005  # not all NULL
            # The change feed's trigger is on again after the backfill.
            assert [(name, state) for name, state in enabled] == [
                ("hmt_gtt_orders_notify", "O"),
                ("hmt_gtt_orders_notify_truncate", "O"),
                ("hmt_gtt_orders_price_units", "O"),
            ]
        await migrate.downgrade(engine, "0003")
        async with engine.connect() as conn:
            columns = [
                r[0]
                for r in await conn.execute(
                    text(
                        "SELECT name FROM pragma_table_info('hmt_gtt_orders')"
                        if not postgresql
                        else "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'hmt_gtt_orders'"
                    )
                )
            ]
        assert not [c for c in columns if c.endswith("_units")]
        assert len(columns) > 30
        await migrate.upgrade(engine)
        await migrate.check(engine)
    finally:
        await engine.dispose()
