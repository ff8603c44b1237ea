"""RELIABILITY 21 (in part): three `hmt run --cluster` processes on loopback, SIGKILLed.

Real nats-server (a private one), real PostgreSQL (a private database), the Kite
simulator in the test process as the broker and the judge: every trigger's tag must
be in its order book exactly once. Each node holds the triggers of the partitions it
leases and nothing else: the nodes' books add up to the active set exactly.

A kill: the node holding the partitions of some armed triggers is SIGKILLed, and
their instruments' prices cross at once, inside the hand-off gap. A survivor must
lease the partitions, load their triggers and fire them (the crossing is seen on the
snapshot tick its feed gets on subscribing). The fail-over time is the time from the
kill to the first order a survivor places for a moved trigger (the simulator's
order book is polled every 10 ms). The killed node is then started again, and
takes its partitions back, before the next kill.

`make test`: HMT_CLUSTER_KILLS (default 2) kills at HMT_CLUSTER_TEST_TTL_S (default
1.5 s). `make soak`: 20 kills at 1.5 s, then 20 at the default TTL 3 s, and the
fail-over times' p50 and p99 printed (docs/reliability.md records the runs).
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
from typing import Any

import httpx
import pytest

from hmt.cluster.connection import connect
from hmt.cluster.leases import read_leases
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.partitions import assignment, partition_of
from hmt.core.types import Exchange, InstrumentToken, Leg
from hmt.kite.tags import broker_tag
from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.support.postgres import private_database

KILLS = int(os.environ.get("HMT_CLUSTER_KILLS", "2"))
# Short by default, so a kill moves partitions in about 2 s (TTL + TTL/3); `make soak`
# also measures the default 3 s (the design's 5 s target is at 3 s).
TTL_S = float(os.environ.get("HMT_CLUSTER_TEST_TTL_S", "1.5"))
# Each kill takes 8-10 s here at 1.5 s (the fail-over, the node's restart, its partitions
# back); the TTL's part of it grows with the TTL.
pytestmark = [pytest.mark.pg, pytest.mark.timeout(90 + (20 + 4 * (TTL_S - 1.5)) * KILLS)]
NODES = ("node-1", "node-2", "node-3")
PARTITIONS = 16
PER_INSTRUMENT = 2


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_run") as url:
        yield url


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=16) as running:
        yield running


class Cluster:
    """The three node processes: started, killed, restarted."""

    def __init__(
        self, sim: Simulator, pg_url: str, nats_url: str, logs: Path, stack: AsyncExitStack
    ) -> None:
        self.sim, self.pg_url, self.nats_url, self.logs = sim, pg_url, nats_url, logs
        self.stack = stack
        self.nodes: dict[str, EngineProcess] = {}
        self.starts: Counter[str] = Counter()

    async def start(self, node: str) -> EngineProcess:
        self.starts[node] += 1
        process = await self.stack.enter_async_context(
            engine_process(
                self.sim,
                self.pg_url,
                self.logs,
                name=f"{node}-{self.starts[node]}",
                engine_id=node,
                cluster_url=self.nats_url,
                cluster_partitions=PARTITIONS,
                cluster_lease_ttl_s=TTL_S,
            )
        )
        self.nodes[node] = process
        return process

    def output(self) -> str:
        return "\n".join(f"--- {n}:\n{p.output(3000)}" for n, p in self.nodes.items())


async def holders(nats_url: str) -> tuple[list[str], dict[int, str]]:
    nc = await connect(nats_url, TTL_S, persistent=False)
    try:
        nodes, held = await read_leases(nc)
    finally:
        await nc.close()
    return nodes, {p: holder for p, (holder, _) in held.items()}


async def books(cluster: Cluster, headers: dict[str, str]) -> dict[str, int]:
    """Each live node's active triggers, from its /stats."""
    counts = {}
    async with httpx.AsyncClient(timeout=2) as client:
        for node, process in cluster.nodes.items():
            if not process.alive:
                continue
            response = await client.get(f"{process.url}/stats", headers=headers)
            if response.status_code != 200:
                return {}
            stats: dict[str, Any] = response.json()
            counts[node] = stats["active_triggers"]
    return counts


def per_tag(sim: Simulator) -> Counter[str]:
    return Counter(str(order.get("tag")) for order in sim.orders())


def tag(trigger: Trigger) -> str:
    return broker_tag(trigger.id, Leg.FIRST)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Market:
    """The instruments, their prices, and the triggers armed on each (BUY at or above a
    threshold 50 ticks over the price: only a pushed price crosses it)."""

    def __init__(self, sim: Simulator, store: TriggerStore) -> None:
        self.sim, self.store = sim, store
        self.instruments = {i.token: i for i in sim.universe if i.kind == "EQ" and not i.is_index}
        self.price = {token: i.close for token, i in self.instruments.items()}
        self.armed: dict[int, list[Trigger]] = {}
        self.every: list[Trigger] = []
        for token, price in self.price.items():
            sim.push_price(token, self._rupees(token, price))

    def _rupees(self, token: int, units: int) -> Decimal:
        return Decimal(units) / self.instruments[token].divisor

    async def arm(self, tokens: set[int]) -> None:
        for token in sorted(tokens - set(self.armed)):
            instrument = self.instruments[token]
            threshold = self.price[token] + 50 * instrument.tick
            self.armed[token] = [
                (
                    await self.store.create(
                        make_trigger(
                            instrument_token=InstrumentToken(token),
                            exchange=Exchange.NSE,
                            tradingsymbol=instrument.tradingsymbol,
                            trigger_price_1=threshold,
                            price_divisor=instrument.divisor,
                        )
                    )
                ).trigger
                for _ in range(PER_INSTRUMENT)
            ]
            self.every.extend(self.armed[token])

    def cross(self, tokens: set[int]) -> list[Trigger]:
        """Push a price over the thresholds of `tokens`; the triggers that must fire."""
        fired = []
        for token in sorted(tokens):
            group = self.armed.pop(token)
            self.price[token] = group[0].trigger_price_1 + self.instruments[token].tick
            self.sim.push_price(token, self._rupees(token, self.price[token]))
            fired.extend(group)
        return fired


async def rows_placed(store: TriggerStore, fired: list[Trigger]) -> None:
    """Each row placed: it says so a moment after its order reached the broker."""

    async def placed() -> bool:
        records = [await store.load(t.id) for t in fired]
        return all(r is not None and r.status is Status.PLACED for r in records)

    await eventually(placed, within=10, interval=0.05)


async def placed_by_survivors(store: TriggerStore, fired: list[Trigger], victim: str) -> None:
    """Each moved trigger placed under a survivor's claim."""
    await rows_placed(store, fired)
    for trigger in fired:
        record = await store.load(trigger.id)
        assert record is not None
        assert record.claimed_by not in (None, victim), record.claimed_by


def choose_victim(kill: int, armed_by_node: Counter[str]) -> str:
    """Each node in turn, if it holds armed triggers; else the one holding the most."""
    victim = NODES[kill % len(NODES)]
    return victim if armed_by_node[victim] else armed_by_node.most_common(1)[0][0]


async def exactly_once(sim: Simulator, store: TriggerStore, every: list[Trigger]) -> None:
    """Every trigger's tag in the simulator's book exactly once, and every row placed."""
    book = per_tag(sim)
    duplicated = [tag(t) for t in every if book[tag(t)] > 1]
    lost = [tag(t) for t in every if book[tag(t)] == 0]
    assert (duplicated, lost) == ([], [])
    assert len(sim.orders()) == len(every)
    for trigger in every:
        record = await store.load(trigger.id)
        assert record is not None
        assert record.status is Status.PLACED


async def test_three_nodes_fire_once_and_fail_over_after_sigkill(
    sim: Simulator,
    pg_url: str,
    store: TriggerStore,
    nats_url: str,
    tmp_path: Path,
) -> None:
    market = Market(sim, store)
    partition = {token: partition_of(token, PARTITIONS) for token in market.instruments}
    assert len(set(partition.values())) >= 8  # spread over the partitions
    await market.arm(set(market.instruments))
    ops = (await TokenStore(store.db).issue("ops", operator=True)).token
    headers = {"Authorization": f"Bearer {ops}"}

    async def settled(cluster: Cluster) -> None:
        """Every partition leased by its preferred live node; the books add up to the
        armed set."""
        live = {n for n, p in cluster.nodes.items() if p.alive}
        expected = sum(len(group) for group in market.armed.values())

        async def ready() -> bool:
            nodes, held = await holders(nats_url)
            # Each partition with its preferred owner: no hand-off still under way.
            if set(nodes) != live or held != assignment(PARTITIONS, live):
                return False
            counts = await books(cluster, headers)
            return set(counts) == live and sum(counts.values()) == expected

        try:
            await eventually(ready, within=40, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"cluster not settled: {await holders(nats_url)}, "
                f"{await books(cluster, headers)}, expected {expected}\n{cluster.output()}"
            ) from None

    async def ordered(cluster: Cluster, fired: list[Trigger], within: float = 20) -> None:
        wanted = {tag(t) for t in fired}
        try:
            await eventually(lambda: wanted <= set(per_tag(sim)), within=within, interval=0.02)
        except AssertionError:
            raise AssertionError(
                f"{len(wanted - set(per_tag(sim)))} of {len(wanted)} not ordered\n"
                f"{cluster.output()}"
            ) from None

    failovers: list[float] = []
    async with AsyncExitStack() as stack:
        cluster = Cluster(sim, pg_url, nats_url, tmp_path, stack)
        for node in NODES:
            await cluster.start(node)
        for process in cluster.nodes.values():
            await process.ready(within=60)
        await settled(cluster)

        # Normal operation: a quarter of the instruments cross, on whichever node.
        await ordered(cluster, market.cross(set(sorted(market.armed)[: len(market.armed) // 4])))

        for kill in range(KILLS):
            # Re-armed through the store: the change feed takes them to their owners.
            await market.arm(set(market.instruments))
            await settled(cluster)
            _, held = await holders(nats_url)
            victim = choose_victim(kill, Counter(held[partition[t]] for t in market.armed))
            moved = {token for token in market.armed if held[partition[token]] == victim}
            cluster.nodes[victim].kill()
            killed_at = time.perf_counter()
            fired = market.cross(moved)  # inside the hand-off gap: nobody holds them now
            moved_tags = {tag(t) for t in fired}

            def first_order(tags: set[str] = moved_tags) -> bool:
                return bool(tags & set(per_tag(sim)))

            await eventually(first_order, within=20, interval=0.01)
            failovers.append(time.perf_counter() - killed_at)
            await ordered(cluster, fired)
            await cluster.nodes[victim].exited(within=5)
            await placed_by_survivors(store, fired, victim)
            print(
                f"kill {kill + 1}: {victim}, {len(moved)} instruments moved, "
                f"fail-over {failovers[-1]:.2f} s"
            )
            await cluster.start(victim)  # it rejoins and takes its partitions back
            await cluster.nodes[victim].ready(within=60)

        await settled(cluster)
        await ordered(cluster, market.cross(set(market.armed)))
        await rows_placed(store, market.every)  # before the nodes go

    await exactly_once(sim, store, market.every)
    print(
        f"fail-over over {len(failovers)} kills: p50 {statistics.median(failovers):.2f} s, "
        f"p99 {percentile(failovers, 0.99):.2f} s, max {max(failovers):.2f} s "
        f"(TTL {TTL_S} s, {PARTITIONS} partitions, {len(market.instruments)} instruments); "
        f"triggers {len(market.every)}, orders {len(sim.orders())}, duplicated 0, lost 0"
    )
