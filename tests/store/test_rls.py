"""RELIABILITY 11 (RLS part): a plain login role sees and changes only `hmt.user_id`'s rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.postgres import url_for

INSERT = """
INSERT INTO hmt_gtt_orders (user_id, instrument_token, exchange, tradingsymbol, trigger_type,
    transaction_type, trigger_price_1, quantity, product, order_type)
VALUES ($1, 408065, 'NSE', 'INFY', 'single', 'BUY', 1600, 1, 'CNC', 'MARKET')
RETURNING id
"""


@pytest.fixture
async def app_role(pg_url: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A fresh non-owner login role with table privileges, and the owner's connection."""
    owner = await asyncpg.connect(pg_url)
    await owner.execute("TRUNCATE hmt_gtt_orders, hmt_trigger_events")
    role = f"hmt_app_{secrets.token_hex(4)}"
    await owner.execute(f"CREATE ROLE {role} LOGIN")
    await owner.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON hmt_gtt_orders, hmt_trigger_events TO {role}"
    )
    await owner.execute(f"GRANT USAGE ON SEQUENCE hmt_trigger_events_id_seq TO {role}")
    try:
        yield role, owner
    finally:
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


async def test_rls_confines_a_plain_role_to_its_user(
    pg_url: str, app_role: tuple[str, asyncpg.Connection]
) -> None:
    """With hmt.user_id set the role sees and changes only its rows; with none, nothing."""
    role, owner = app_role
    flags = await owner.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", role
    )
    owners = {
        r[0]
        for r in await owner.fetch(
            "SELECT tableowner FROM pg_tables WHERE tablename IN "
            "('hmt_gtt_orders', 'hmt_trigger_events')"
        )
    }
    assert flags is not None
    assert not flags["rolsuper"]
    assert not flags["rolbypassrls"]
    assert role not in owners

    alice = await owner.fetchval(INSERT, "alice")
    bob = await owner.fetchval(INSERT, "bob")
    for user, trigger in (("alice", alice), ("bob", bob)):
        await owner.execute(
            "INSERT INTO hmt_trigger_events (trigger_id, user_id, kind, at, payload) "
            "VALUES ($1, $2, 'created', now(), '{}')",
            trigger,
            user,
        )

    app = await asyncpg.connect(url_for(pg_url.rsplit("/", 1)[1], user=role))
    try:
        # Nothing set: no rows at all, not even a count.
        assert await app.fetchval("SELECT count(*) FROM hmt_gtt_orders") == 0
        assert await app.fetchval("SELECT count(*) FROM hmt_trigger_events") == 0
        async with app.transaction():
            await app.execute("SELECT set_config('hmt.user_id', 'alice', true)")
            assert [r[0] for r in await app.fetch("SELECT id FROM hmt_gtt_orders")] == [alice]
            assert await app.fetchval("SELECT count(*) FROM hmt_trigger_events") == 1
            cross_updates = await app.execute(
                "UPDATE hmt_gtt_orders SET quantity = 99 WHERE id = $1", bob
            )
            cross_deletes = await app.execute("DELETE FROM hmt_gtt_orders WHERE id = $1", bob)
            own_update = await app.execute(
                "UPDATE hmt_gtt_orders SET quantity = 7 WHERE id = $1", alice
            )
            assert (cross_updates, cross_deletes, own_update) == (
                "UPDATE 0",
                "DELETE 0",
                "UPDATE 1",
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                async with app.transaction():
                    await app.fetchval(INSERT, "bob")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                async with app.transaction():
                    await app.execute(
                        "UPDATE hmt_gtt_orders SET user_id = 'bob' WHERE id = $1", alice
                    )
        # The setting was transaction-local: gone again.
        assert await app.fetchval("SELECT count(*) FROM hmt_gtt_orders") == 0
    finally:
        await app.close()
    assert await owner.fetchval("SELECT quantity FROM hmt_gtt_orders WHERE id = $1", bob) == 1
    assert await owner.fetchval("SELECT quantity FROM hmt_gtt_orders WHERE id = $1", alice) == 7
    print(f"role={role} cross-user rows visible=0 cross-user writes=0")
