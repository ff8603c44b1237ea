"""Leases and fences together: a node cut from NATS cannot claim once its partition moved.

Node A holds every partition; its NATS connection is blackholed (a stalled proxy).
Node B takes the partitions when A's leases expire and fences each in PostgreSQL
from its `on_gained` callback. A, whose process is still running and whose
token it remembers, is refused by the database; B claims with its own token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.cluster.connection import connect
from hmt.cluster.leases import LeaseKeeper
from hmt.core.lifecycle import Status
from hmt.core.partitions import partition_of
from hmt.store import fences
from hmt.store.db import Database, create_engine
from hmt.store.tables import gtt_orders as g
from hmt.store.triggers import TriggerStore
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.support.fault_proxy import FaultProxy
from tests.support.postgres import migrated_database

pytestmark = pytest.mark.pg
P = 8
TTL = 1.5


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("hmt_failover") as url:
        yield url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(pg_url, application_name="hmt-failover"), retries=0)
    yield database
    await database.dispose()


def _claim(trigger_id: str, node: str):  # type: ignore[no-untyped-def]
    async def claim(conn: AsyncConnection) -> bool:
        result = await conn.execute(
            update(g)
            .where(g.c.id == trigger_id, g.c.status == Status.ACTIVE.value)
            .values(status=Status.TRIGGERED.value, claimed_by=node)
        )
        return result.rowcount == 1

    return claim


# nats-py leaks the writer of a reconnect attempt stalled by the proxy (see test_leases).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_cut_node_is_fenced_off_by_the_new_holder(
    db: Database, nats_url: str, nats_port: int
) -> None:
    store = TriggerStore(db)
    trigger = make_trigger()
    await store.create(trigger)
    partition = partition_of(trigger.watched, P)
    fencing: list[asyncio.Task[bool]] = []

    def gained_by_b(p: int, token: int) -> None:
        fencing.append(asyncio.create_task(fences.fence(db, p, token, "node-b")))

    async with FaultProxy(nats_port) as proxy:
        nc_a = await connect(f"nats://127.0.0.1:{proxy.port}", TTL)
        nc_b = await connect(nats_url, TTL)
        a = LeaseKeeper(nc_a, "node-a", partitions=P, ttl_s=TTL)
        await a.start()
        await eventually(lambda: len(a.held()) == P, within=3 * TTL)
        token_a = a.held()[partition]
        assert await fences.fence(db, partition, token_a, "node-a")  # A fenced on gaining
        proxy.stall()
        b = LeaseKeeper(nc_b, "node-b", partitions=P, ttl_s=TTL, on_gained=gained_by_b)
        await b.start()
        await eventually(lambda: partition in b.held(), within=4 * TTL)
        assert a.token(partition) is None  # A knows it no longer holds it ...
        await asyncio.gather(*fencing)
        token_b = b.held()[partition]
        assert token_b > token_a
        # ... and were A to claim anyway (a frozen process waking late), PostgreSQL refuses.
        with pytest.raises(fences.Fenced):
            await fences.claim_fenced(db, partition, token_a, "node-a", _claim(trigger.id, "a"))
        assert (await store.get("alice", trigger.id)).status is Status.ACTIVE
        assert await fences.claim_fenced(
            db, partition, token_b, "node-b", _claim(trigger.id, "node-b")
        )
        assert (await store.get("alice", trigger.id)).claimed_by == "node-b"
        await b.stop()
        await a.stop(release=False)
        for nc in (nc_a, nc_b):
            with contextlib.suppress(Exception):
                await nc.close()
