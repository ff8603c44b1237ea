"""Issue 16: one account's order rate limit holds across the cluster (RELIABILITY 12 there).

Three `hmt run --cluster` processes (private nats-server, private PostgreSQL, the Kite
simulator in this process), one Kite API key. Triggers on every instrument, spread
over partitions that all three nodes hold, fire on one push of prices. Each node's
own throttle would let it send 10 a second, 30 together; the simulator answers any
order past 10 in a second with 429. The judge is the simulator's record of every
order request it was sent (refused ones too): no window (t - 1 s, t] holds more than
10, no 429, and every trigger's tag in its book exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.cluster.test_cluster_run import (
    NODES,
    Cluster,
    Market,
    books,
    exactly_once,
    holders,
    rows_placed,
)
from tests.cluster.test_cluster_run import PARTITIONS as PARTITIONS  # the store fixture's
from tests.support.eventually import eventually
from tests.support.postgres import private_database
from tests.system.test_throttle import PER_SECOND, busiest_second

pytestmark = [pytest.mark.pg, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_limit") as url:
        yield url


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=17) as running:
        yield running


def record_requests(sim: Simulator) -> list[float]:
    """Every order request's arrival at the simulator's rate limiter, refused ones too."""
    limiter = sim.broker.rate_limiter
    arrivals: list[float] = []
    take = limiter.take

    def counted() -> None:
        arrivals.append(limiter.clock())
        take()

    limiter.take = counted  # type: ignore[method-assign]
    return arrivals


async def test_orders_fired_on_three_nodes_stay_within_one_accounts_limit(
    sim: Simulator, pg_url: str, store: TriggerStore, nats_url: str, tmp_path: Path
) -> None:
    market = Market(sim, store)
    await market.arm(set(market.instruments))
    ops = (await TokenStore(store.db).issue("ops", operator=True)).token
    headers = {"Authorization": f"Bearer {ops}"}
    arrivals = record_requests(sim)
    async with AsyncExitStack() as stack:
        cluster = Cluster(sim, pg_url, nats_url, tmp_path, stack)
        for node in NODES:
            await cluster.start(node)
        for process in cluster.nodes.values():
            await process.ready(within=60)

        async def spread() -> bool:
            """Every node holds partitions, armed triggers each; the books add up."""
            nodes, _ = await holders(nats_url)
            counts = await books(cluster, headers)
            return (
                set(nodes) == set(NODES)
                and set(counts) == set(NODES)
                and all(counts.values())
                and sum(counts.values()) == len(market.every)
            )

        try:
            await eventually(spread, within=40, interval=0.1)
        except AssertionError:
            raise AssertionError(f"not spread: {await books(cluster, headers)}") from None
        counts = await books(cluster, headers)
        fired = market.cross(set(market.armed))  # every trigger, on one push of prices
        await eventually(lambda: len(sim.orders()) >= len(fired), within=60, interval=0.05)
        await rows_placed(store, fired)
        output = cluster.output()

    await exactly_once(sim, store, market.every)
    arrivals.sort()
    refused = sim.broker.rate_limiter.refused
    busiest = busiest_second(arrivals)
    spread_s = arrivals[-1] - arrivals[0]
    print(
        f"\ncluster rate limit: nodes={len(NODES)} books={dict(counts)} fired={len(fired)} "
        f"requests={len(arrivals)} sim_429s={refused} max_orders_in_any_1s={busiest} "
        f"spread_s={spread_s:.2f}"
    )
    assert refused == 0, output
    assert busiest <= PER_SECOND, output
    assert len(arrivals) == len(fired)
    assert Counter(str(o.get("tag")) for o in sim.orders()).most_common(1)[0][1] == 1
