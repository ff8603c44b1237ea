"""A linked account's order rate limit holds across the cluster (docs/accounts.md,
docs/cluster.md "Orders"): its orders go through `SlottedOrders` with the account's own
slots, keyed `account_id("kite", api_key)`, as the default account's do.

Private nats-server, private PostgreSQL, the Kite simulator with a second account
(its own order book and its own 10-a-second limit, as Kite keeps each user's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pydantic import SecretStr

from hmt.cluster.account_lease import account_id
from hmt.cluster.order_slots import AccountSlots, SlottedOrders
from hmt.core.types import Exchange, InstrumentToken
from hmt.sim.simulator import Simulator
from hmt.store.linked import LinkedAccount, LinkedAccounts
from hmt.store.sealing import Sealer
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.cluster.test_cluster_run import Cluster, Market, books, holders, rows_placed
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.support.postgres import private_database
from tests.support.system import running_system
from tests.system.test_throttle import PER_SECOND, busiest_second

pytestmark = [pytest.mark.pg, pytest.mark.timeout(150)]

PARTITIONS = 16  # the store fixture's
TTL_S = 1.5
KEY = "a-test-sealing-key-0123456789"
NODES = ("node-1", "node-2")
ACCOUNT = "family-2"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_accounts") as url:
        yield url


def slots_of(services: list[object], key: str) -> list[AccountSlots]:
    return [s for s in services if isinstance(s, AccountSlots) and s.account == key]


async def test_an_account_linked_on_a_running_node_places_through_its_own_slots(
    pg_url: str, nats_url: str
) -> None:
    """POST /accounts on a running cluster node: the account's executor places through
    `SlottedOrders` whose slots are the account's (keyed by broker and API key, apart
    from the default account's), started at once; its order is granted by them."""
    async with running_system(
        pg_url,
        secret_key=KEY,
        cluster_url=nats_url,
        engine_id="node-1",
        cluster_partitions=PARTITIONS,
        cluster_lease_ttl_s=TTL_S,
    ) as system:
        sim, runtime, token = system.sim, system.runtime, system.token
        node, executors = runtime.cluster, runtime.executors
        assert node is not None
        assert executors is not None
        second = sim.add_account("SIM002")
        linked = await system.client.post(
            "/accounts",
            json={
                "id": ACCOUNT,
                "broker": "kite",
                "label": "Family, second",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert linked.status_code == 201, linked.text
        await eventually(lambda: ACCOUNT in executors.live)

        key = account_id("kite", second.api_key)
        [slots] = slots_of(node.services, key)
        default_key = account_id("kite", runtime.settings.kite_api_key or "")
        assert key != default_key
        assert len(slots_of(node.services, default_key)) == 1
        port = executors.linked[ACCOUNT].executor._broker
        assert isinstance(port, SlottedOrders)
        assert port.slots is slots.client
        await eventually(lambda: slots.lease.token() is not None, within=10)  # the only node

        system.push(token, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00", account=ACCOUNT)
        system.push(token, "1612.00")
        assert (await system.settled(trigger["id"]))["status"] == "placed"
        assert [order["tag"] for order in second.orders()] == [
            (await system.trigger(trigger["id"]))["broker_tag"]
        ]
        assert slots.owner.granted == 1  # the account's own slot, not the default's

        # Another hmt account on the same app (broker and API key): the broker counts
        # them as one, so they share the slots (the safe side), not a second lease.
        same = await system.client.post(
            "/accounts",
            json={
                "id": "family-3",
                "broker": "kite",
                "label": "Family, same app",
                "api_key": second.api_key,
                "access_token": second.access_token,
            },
            headers=system.auth(),
        )
        assert same.status_code == 201, same.text
        assert slots_of(node.services, key) == [slots]
        shared = executors.linked["family-3"].executor._broker
        assert isinstance(shared, SlottedOrders)
        assert shared.slots is slots.client


class Nodes(Cluster):
    """The node processes, with HMT_SECRET_KEY: they open the linked account's row."""

    async def start(self, node: str) -> EngineProcess:
        self.starts[node] += 1
        process = await self.stack.enter_async_context(
            engine_process(
                self.sim,
                self.pg_url,
                self.logs,
                name=f"{node}-{self.starts[node]}",
                engine_id=node,
                secret_key=KEY,
                cluster_url=self.nats_url,
                cluster_partitions=PARTITIONS,
                cluster_lease_ttl_s=TTL_S,
            )
        )
        self.nodes[node] = process
        return process


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=17) as running:
        yield running


async def test_two_nodes_orders_for_one_linked_account_stay_within_its_limit(
    sim: Simulator, pg_url: str, store: TriggerStore, nats_url: str, tmp_path: Path
) -> None:
    """Two `hmt run --cluster` processes load a stored linked account at start; triggers
    of that account on every instrument, spread over both nodes, fire on one push of
    prices. Each node's own throttle would let 10 a second go from each; the account's
    slots let 10 a second go from both together: no second of the account's order
    requests holds more than 10, the simulator refuses none (429), every tag once."""
    second = sim.add_account("SIM002")
    await store.db.transaction(lambda conn: conn.exec_driver_sql("TRUNCATE hmt_accounts"))
    await LinkedAccounts(store.db, Sealer([KEY])).link(
        LinkedAccount(
            id=ACCOUNT,
            user_id="alice",
            broker="kite",
            label="Family, second",
            api_key=second.api_key,
            access_token=SecretStr(second.access_token),
        )
    )
    market = Market(sim, store)
    every = []
    for token_id, instrument in market.instruments.items():
        threshold = market.price[token_id] + 50 * instrument.tick
        for _ in range(2):
            created = await store.create(
                make_trigger(
                    instrument_token=InstrumentToken(token_id),
                    exchange=Exchange.NSE,
                    tradingsymbol=instrument.tradingsymbol,
                    trigger_price_1=threshold,
                    price_divisor=instrument.divisor,
                    account=ACCOUNT,
                )
            )
            market.armed.setdefault(token_id, []).append(created.trigger)
            every.append(created.trigger)
    assert len(every) > 3 * PER_SECOND  # enough for each node's own throttle to overrun it
    ops = (await TokenStore(store.db).issue("ops", operator=True)).token
    headers = {"Authorization": f"Bearer {ops}"}
    limiter = second.broker.rate_limiter
    arrivals: list[float] = []
    take = limiter.take

    def counted() -> None:
        arrivals.append(limiter.clock())
        take()

    limiter.take = counted  # type: ignore[method-assign]
    key = account_id("kite", second.api_key)
    async with AsyncExitStack() as stack:
        cluster = Nodes(sim, pg_url, nats_url, tmp_path, stack)
        for name in NODES:
            await cluster.start(name)
        for process in cluster.nodes.values():
            await process.ready(within=60)

        async def spread() -> bool:
            nodes, _ = await holders(nats_url)
            counts = await books(cluster, headers)
            return (
                set(nodes) == set(NODES)
                and set(counts) == set(NODES)
                and all(counts.values())
                and sum(counts.values()) == len(every)
            )

        try:
            await eventually(spread, within=40, interval=0.1)
        except AssertionError:
            raise AssertionError(f"not spread: {await books(cluster, headers)}") from None
        for process in cluster.nodes.values():  # both made the account's slots at start
            made = {event["account"] for event in process.events("cluster_order_slots")}
            assert key in made, process.output()
        counts = await books(cluster, headers)
        fired = market.cross(set(market.armed))
        await eventually(lambda: len(second.orders()) >= len(fired), within=60, interval=0.05)
        await rows_placed(store, fired)
        output = cluster.output()

    arrivals.sort()
    busiest = busiest_second(arrivals)
    print(
        f"\nlinked account's limit: books={dict(counts)} fired={len(fired)} "
        f"requests={len(arrivals)} sim_429s={limiter.refused} max_in_any_1s={busiest}"
    )
    assert limiter.refused == 0, output
    assert busiest <= PER_SECOND, output
    assert len(arrivals) == len(fired)
    assert Counter(str(o.get("tag")) for o in second.orders()).most_common(1)[0][1] == 1
    assert sim.orders() == []  # nothing went through the default account
