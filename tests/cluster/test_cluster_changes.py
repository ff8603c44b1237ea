"""Issue 16, "Changes": an API write on any node reaches the owning node's book.

Two `hmt run --cluster` processes (a private nats-server, a private PostgreSQL
database, the simulator in the test process). Each trigger is created through node A's
HTTP API for an instrument in a partition node B leases; A commits it (and does not arm
it: not its partition), B learns of it through PostgreSQL's change feed and arms it.
Seen from outside: B's book (its /stats `active_triggers`, the book's size) grows by one
after each create, A's stays empty; at the end every instrument crosses and every
trigger is placed once, under B's claim.

The bound: from A's 201 response to B's book holding the trigger (B's /stats polled
back to back, a few ms a poll here), over HMT_CLUSTER_CHANGES writes (default 50);
p50 and p99 are printed (docs/cluster.md, "Changes", records a run). Not asserted: this
is a shared 2-core machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hmt.cluster.connection import connect
from hmt.cluster.leases import read_leases
from hmt.core.lifecycle import Status
from hmt.core.partitions import assignment, partition_of
from hmt.core.types import Leg, TriggerId
from hmt.kite.tags import broker_tag
from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.postgres import private_database

WRITES = int(os.environ.get("HMT_CLUSTER_CHANGES", "50"))
pytestmark = [pytest.mark.pg, pytest.mark.timeout(180 + WRITES)]
PARTITIONS = 16
TTL_S = 1.5
A, B = "node-1", "node-2"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_changes") as url:
        yield url


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=16) as running:
        yield running


async def holders(nats_url: str) -> dict[int, str]:
    nc = await connect(nats_url, TTL_S, persistent=False)
    try:
        _, held = await read_leases(nc)
    finally:
        await nc.close()
    return {partition: holder for partition, (holder, _) in held.items()}


async def book_size(client: httpx.AsyncClient, node: EngineProcess) -> int:
    response = await client.get(f"{node.url}/stats")
    assert response.status_code == 200, response.text
    size: int = response.json()["active_triggers"]
    return size


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def test_a_write_on_one_node_reaches_the_owners_book(
    sim: Simulator, pg_url: str, store: TriggerStore, nats_url: str, tmp_path: Path
) -> None:
    tokens = TokenStore(store.db)
    alice = (await tokens.issue("alice")).token
    ops = (await tokens.issue("ops", operator=True)).token
    equities = {i.token: i for i in sim.universe if i.kind == "EQ" and not i.is_index}
    for token, instrument in equities.items():
        sim.push_price(token, Decimal(instrument.close) / instrument.divisor)

    async with AsyncExitStack() as stack:
        nodes = {
            node: await stack.enter_async_context(
                engine_process(
                    sim,
                    pg_url,
                    tmp_path,
                    name=node,
                    engine_id=node,
                    cluster_url=nats_url,
                    cluster_partitions=PARTITIONS,
                    cluster_lease_ttl_s=TTL_S,
                    rate_limit_writes_per_min=0,  # the writes come back to back
                )
            )
            for node in (A, B)
        }
        for process in nodes.values():
            await process.ready(within=60)

        async def settled() -> bool:
            return await holders(nats_url) == assignment(PARTITIONS, {A, B})

        await eventually(settled, within=30, interval=0.1)
        held = await holders(nats_url)
        owned_by_b = sorted(t for t in equities if held[partition_of(t, PARTITIONS)] == B)
        assert owned_by_b, "node-2 leases none of the simulator's equities' partitions"

        writer = httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {alice}"})
        reader = httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {ops}"})
        stack.push_async_callback(writer.aclose)
        stack.push_async_callback(reader.aclose)
        created: list[TriggerId] = []
        bounds: list[float] = []
        for n in range(WRITES):
            instrument = equities[owned_by_b[n % len(owned_by_b)]]
            threshold = Decimal(instrument.close + 50 * instrument.tick) / instrument.divisor
            response = await writer.post(
                f"{nodes[A].url}/triggers",
                json={
                    "instrument_token": instrument.token,
                    "exchange": "NSE",
                    "tradingsymbol": instrument.tradingsymbol,
                    "trigger_type": "single",
                    "transaction_type": "BUY",
                    "trigger_price_1": str(threshold),
                    "quantity": 1,
                    "product": "CNC",
                },
            )
            answered = time.perf_counter()
            assert response.status_code == 201, response.text
            created.append(TriggerId(response.json()["id"]))
            deadline = answered + 10
            while await book_size(reader, nodes[B]) < n + 1:
                assert time.perf_counter() < deadline, (
                    f"write {n + 1} never reached node-2's book\n{nodes[B].output()}"
                )
            bounds.append(time.perf_counter() - answered)
        assert await book_size(reader, nodes[A]) == 0  # A wrote them; it holds none of them

        # B's behaviour: every instrument crosses; B fires each trigger once.
        for token in owned_by_b:
            instrument = equities[token]
            price = Decimal(instrument.close + 51 * instrument.tick) / instrument.divisor
            sim.push_price(token, price)
        tags = {broker_tag(trigger_id, Leg.FIRST) for trigger_id in created}

        def all_ordered() -> bool:
            return tags <= {str(order.get("tag")) for order in sim.orders()}

        await eventually(all_ordered, within=30, interval=0.05)

        async def placed() -> bool:
            records = [await store.load(trigger_id) for trigger_id in created]
            return all(r is not None and r.status is Status.PLACED for r in records)

        await eventually(placed, within=20, interval=0.05)

    book = Counter(str(order.get("tag")) for order in sim.orders())
    assert all(book[tag] == 1 for tag in tags)
    for trigger_id in created:
        record = await store.load(trigger_id)
        assert record is not None
        assert record.claimed_by == B, record.claimed_by
    print(
        f"changes: {len(bounds)} writes on {A} for {B}'s partitions, response to armed on "
        f"the owner p50 {statistics.median(bounds) * 1000:.1f} ms, "
        f"p99 {percentile(bounds, 0.99) * 1000:.1f} ms, max {max(bounds) * 1000:.1f} ms, "
        f"min {min(bounds) * 1000:.1f} ms"
    )
