"""PostgreSQL only: the basket state table is confined by RLS like the other user tables,
and v2 creates and edits reach the change feed like any other."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from hmt.core.instruments import Instrument
from hmt.core.model import LegSpec
from hmt.core.types import Direction, Exchange, InstrumentToken
from hmt.store.changes import Change, ChangeFeed, Op
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore
from tests.store.test_changes import _count, consuming
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.support.postgres import url_for

ORDER_ROW = """
INSERT INTO hmt_trigger_orders (trigger_id, leg, position, user_id, tag, status)
VALUES (gen_random_uuid(), 1, $2, $1, 'HMTTAG', 'pending')
"""
NIFTY = Instrument(InstrumentToken(256265), Exchange.NSE, "NIFTY 50", 100, 5, 0, tradable=False)


async def test_rls_confines_a_plain_role_to_its_users_order_rows(pg_url: str) -> None:
    """With hmt.user_id set a non-owner role sees and writes only that user's order rows;
    with none, no rows."""
    owner = await asyncpg.connect(pg_url)
    role = f"hmt_app_{secrets.token_hex(4)}"
    await owner.execute("TRUNCATE hmt_trigger_orders")
    await owner.execute(f"CREATE ROLE {role} LOGIN")
    await owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON hmt_trigger_orders TO {role}")
    try:
        await owner.execute(ORDER_ROW, "alice", 0)
        await owner.execute(ORDER_ROW, "bob", 0)
        app = await asyncpg.connect(url_for(pg_url.rsplit("/", 1)[1], user=role))
        try:
            assert await app.fetchval("SELECT count(*) FROM hmt_trigger_orders") == 0
            async with app.transaction():
                await app.execute("SELECT set_config('hmt.user_id', 'alice', true)")
                assert [
                    r[0] for r in await app.fetch("SELECT user_id FROM hmt_trigger_orders")
                ] == ["alice"]
                assert (
                    await app.execute(
                        "UPDATE hmt_trigger_orders SET status = 'placed' WHERE user_id = 'bob'"
                    )
                    == "UPDATE 0"
                )
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                    async with app.transaction():
                        await app.execute(ORDER_ROW, "bob", 1)
        finally:
            await app.close()
        statuses = await owner.fetch("SELECT user_id, status FROM hmt_trigger_orders ORDER BY 1")
        assert [tuple(r) for r in statuses] == [("alice", "pending"), ("bob", "pending")]
    finally:
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


async def test_v2_creates_and_edits_reach_the_change_feed(pg_url: str) -> None:
    """The NOTIFY trigger is unchanged by revision 0003: a watched trigger's create and an
    edit of its legs arrive as changes, in order."""
    sql = await asyncpg.connect(pg_url)
    await sql.execute("TRUNCATE hmt_gtt_orders")
    await sql.close()
    db = Database(create_engine(pg_url), retries=0, backoff_ms=1)
    store = TriggerStore(db)
    trigger = make_trigger(
        watch_token=NIFTY.id,
        trigger_price_1=2_380_000,
        leg_specs=(LegSpec(direction=Direction.AT_OR_BELOW),),
    )
    feed = ChangeFeed(pg_url, application_name=f"hmt-l-{secrets.token_hex(3)}")
    try:
        async with consuming(feed) as items:
            await store.create(trigger, watch=NIFTY)
            edit: dict[str, Any] = {
                "leg_specs": (LegSpec(direction=Direction.AT_OR_ABOVE),),
                "expires_at": store.clock() + timedelta(days=1),
            }
            await store.update("alice", trigger.id, edit)
            await eventually(lambda: _count(items, Change, 2))
    finally:
        await db.dispose()
    changes = [item for item in items if isinstance(item, Change)]
    assert changes == [Change(op, trigger.id, "alice") for op in (Op.INSERT, Op.UPDATE)]
