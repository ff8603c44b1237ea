"""Ticks over NATS with three `hmt run --cluster` processes (docs/cluster.md, "Ticks").

The cluster opens one WebSocket connection to the broker (the simulator counts its
clients), held by the node holding the feed lease `feed.<api key>.0`; every node's
triggers still fire, from the ticks it gets over NATS. The holder is SIGKILLed: the
lease moves to a survivor, which connects and carries every instrument again, and a
price pushed after the kill fires the triggers of the partitions the survivors
already held (only the feed moved for them) and, once they move, the dead node's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from hmt.cluster.connection import connect
from hmt.cluster.ticks import feed_key
from hmt.core.model import Trigger
from hmt.core.partitions import assignment, partition_of
from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.cluster.test_cluster_run import (
    NODES,
    PARTITIONS,
    TTL_S,
    Cluster,
    Market,
    books,
    exactly_once,
    holders,
    per_tag,
    rows_placed,
    tag,
)
from tests.support.eventually import eventually
from tests.support.postgres import private_database

pytestmark = [pytest.mark.pg, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_ticks") as url:
        yield url


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=61) as running:
        yield running


async def feed_holder(nats_url: str, api_key: str) -> str | None:
    nc = await connect(nats_url, TTL_S, persistent=False)
    try:
        kv = await nc.jetstream().key_value("hmt_leases")
        try:
            entry = await kv.get(feed_key(api_key))
        except Exception:
            return None
        return (entry.value or b"").decode() or None
    finally:
        await nc.close()


async def test_one_feed_connection_serves_the_cluster_and_moves_when_its_holder_dies(
    sim: Simulator, pg_url: str, store: TriggerStore, nats_url: str, tmp_path: Path
) -> None:
    market = Market(sim, store)
    partition = {token: partition_of(token, PARTITIONS) for token in market.instruments}
    await market.arm(set(market.instruments))
    ops = (await TokenStore(store.db).issue("ops", operator=True)).token
    headers = {"Authorization": f"Bearer {ops}"}

    async with AsyncExitStack() as stack:
        cluster = Cluster(sim, pg_url, nats_url, tmp_path, stack)

        async def settled() -> None:
            live = {n for n, p in cluster.nodes.items() if p.alive}
            expected = sum(len(group) for group in market.armed.values())

            async def ready() -> bool:
                nodes, held = await holders(nats_url)
                if set(nodes) != live or held != assignment(PARTITIONS, live):
                    return False
                counts = await books(cluster, headers)
                holder = await feed_holder(nats_url, sim.api_key)
                return (
                    set(counts) == live
                    and sum(counts.values()) == expected
                    and holder in live
                    and len(sim.ticker.clients) == 1
                )

            try:
                await eventually(ready, within=40, interval=0.1)
            except AssertionError:
                raise AssertionError(
                    f"not settled: {await holders(nats_url)}, {await books(cluster, headers)}, "
                    f"feed {await feed_holder(nats_url, sim.api_key)}, "
                    f"{len(sim.ticker.clients)} ticker clients\n{cluster.output()}"
                ) from None

        async def ordered(fired: list[Trigger], within: float = 20) -> None:
            wanted = {tag(t) for t in fired}
            try:
                await eventually(lambda: wanted <= set(per_tag(sim)), within=within, interval=0.02)
            except AssertionError:
                raise AssertionError(
                    f"{len(wanted - set(per_tag(sim)))} of {len(wanted)} not ordered\n"
                    f"{cluster.output()}"
                ) from None

        for node in NODES:
            await cluster.start(node)
        for process in cluster.nodes.values():
            await process.ready(within=60)
        await settled()  # one broker connection for three nodes

        # Each node fires what it owns, from ticks the holder republished over NATS.
        _, held = await holders(nats_url)
        by_node = Counter(held[partition[t]] for t in market.armed)
        assert len(by_node) == len(NODES), by_node  # every node owns armed instruments
        some = set(sorted(market.armed)[::2])
        first = market.cross(some)
        await ordered(first)
        # Settled before the kill: a claim the holder left in flight would wait for its
        # claim lease (another test's subject), not for the feed.
        await rows_placed(store, first)
        fired_by = Counter(held[partition[t]] for t in some)
        assert len(fired_by) >= 2, fired_by

        # SIGKILL the feed holder.
        victim = await feed_holder(nats_url, sim.api_key)
        assert victim in cluster.nodes
        staying = {t for t in market.armed if held[partition[t]] != victim}
        moving = {t for t in market.armed if held[partition[t]] == victim}
        cluster.nodes[victim].kill()
        killed_at = time.perf_counter()
        await cluster.nodes[victim].exited(within=5)
        fired = market.cross(staying)  # pushed while no node holds the feed
        await ordered(fired)
        resumed = time.perf_counter() - killed_at
        new_holder = await feed_holder(nats_url, sim.api_key)
        assert new_holder not in (None, victim), new_holder
        await ordered(market.cross(moving))
        print(
            f"feed holder {victim} killed: ticks resumed on {new_holder} and "
            f"{len(staying)} instruments' triggers fired {resumed:.2f} s after the kill"
        )
        await rows_placed(store, market.every)
        # Back to one broker connection for the two survivors.
        await eventually(lambda: len(sim.ticker.clients) == 1, within=10, interval=0.05)

    await exactly_once(sim, store, market.every)
