"""Fencing in PostgreSQL (hmt.store.fences): a stale lease token cannot claim."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.lifecycle import Status
from hmt.store import fences
from hmt.store.db import Database
from hmt.store.tables import gtt_orders as g
from hmt.store.triggers import TriggerStore
from tests.support.factories import make_trigger
from tests.support.postgres import migrated_database

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("hmt_fences") as url:
        yield url


def _claim(trigger_id: str, node: str):  # type: ignore[no-untyped-def]
    async def claim(conn: AsyncConnection) -> bool:
        result = await conn.execute(
            update(g)
            .where(g.c.id == trigger_id, g.c.status == Status.ACTIVE.value)
            .values(status=Status.TRIGGERED.value, claimed_by=node)
        )
        return result.rowcount == 1

    return claim


async def _status(db: Database, store: TriggerStore, trigger_id: str) -> tuple[str, str | None]:
    record = await store.get("alice", trigger_id)
    return record.status.value, record.claimed_by


async def test_the_fence_only_grows(db: Database) -> None:
    assert await fences.fenced(db, 3) is None
    assert await fences.fence(db, 3, 100, "node-a")
    assert await fences.fence(db, 3, 100, "node-a")  # the holder again: same token
    assert not await fences.fence(db, 3, 99, "node-b")
    assert await fences.fenced(db, 3) == 100
    assert await fences.fence(db, 3, 140, "node-b")
    assert await fences.fenced(db, 3) == 140
    assert await fences.fenced(db, 4) is None  # partitions are fenced apart


async def test_a_stale_holder_cannot_claim_once_the_new_one_fenced(db: Database) -> None:
    store = TriggerStore(db)
    first, second = make_trigger(), make_trigger()
    await store.create(first)
    await store.create(second)
    assert await fences.claim_fenced(db, 7, 100, "node-a", _claim(first.id, "node-a"))
    assert await fences.fence(db, 7, 150, "node-b")  # node-b took partition 7 over
    with pytest.raises(fences.Fenced, match="partition 7: lease token 100"):
        await fences.claim_fenced(db, 7, 100, "node-a", _claim(second.id, "node-a"))
    assert await _status(db, store, second.id) == ("active", None)  # nothing written
    assert await fences.claim_fenced(db, 7, 150, "node-b", _claim(second.id, "node-b"))
    assert await _status(db, store, second.id) == ("triggered", "node-b")


async def test_a_claim_in_flight_and_a_new_fence_serialize(db: Database) -> None:
    """The old holder's claim holds the fence row: the new fence waits, then wins."""
    store = TriggerStore(db)
    trigger, later = make_trigger(), make_trigger()
    await store.create(trigger)
    await store.create(later)
    assert await fences.fence(db, 9, 100, "node-a")
    inside = asyncio.Event()
    release = asyncio.Event()
    claim = _claim(trigger.id, "node-a")

    async def slow_claim(conn: AsyncConnection) -> bool:
        won = await claim(conn)
        inside.set()
        await release.wait()  # the claim's transaction is open, the fence row locked
        return won

    claiming = asyncio.create_task(fences.claim_fenced(db, 9, 100, "node-a", slow_claim))
    await inside.wait()
    fencing = asyncio.create_task(fences.fence(db, 9, 200, "node-b"))
    await asyncio.sleep(0.3)
    assert not fencing.done()  # blocked on the row lock of the claim in flight
    release.set()
    assert await claiming
    assert await fencing
    assert await _status(db, store, trigger.id) == ("triggered", "node-a")  # for node-b to
    # reconcile by tag; and node-a claims nothing more:
    with pytest.raises(fences.Fenced):
        await fences.claim_fenced(db, 9, 100, "node-a", _claim(later.id, "node-a"))
    assert await fences.fenced(db, 9) == 200
