"""The account's order slots on a real nats-server (hmt.cluster.order_slots, account_lease).

Three in-process nodes, each with its partition keeper (presence: the live nodes),
its account lease and slot service, and a `SlottedOrders` in front of one shared
recording broker (one API key). Orders are placed the way the executor places them:
a 429 (no slot: nothing sent) is sent again after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from hmt.cluster.account_lease import account_id, preferred_node
from hmt.cluster.connection import connect
from hmt.cluster.leases import LeaseKeeper
from hmt.cluster.order_slots import AccountSlots, SlottedOrders
from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.rules import order_for
from hmt.core.throttle import KITE_ORDER_LIMITS
from hmt.core.types import Leg
from hmt.waits import within
from tests.support.eventually import eventually
from tests.support.factories import make_trigger
from tests.system.test_throttle import PER_SECOND, busiest_second

TTL = 1.5
ACCOUNT = account_id("Kite", "api-key-of-the-test")
NODES = ("node-1", "node-2", "node-3")


class RecordingBroker:
    """One API key's order book: when each order arrived, and each tag's count."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.tags: Counter[str] = Counter()

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return f"t{trigger_id}"

    async def place(self, intent: OrderIntent) -> str:
        self.arrivals.append(asyncio.get_running_loop().time())
        self.tags[intent.tag] += 1
        await asyncio.sleep(0.005)  # the broker's answer
        return f"order-{len(self.arrivals)}"

    async def find(self, tag: str) -> list[OrderReport]:
        return []

    async def orders(self) -> list[OrderReport]:
        return []


class Node:
    def __init__(self, url: str, name: str, broker: RecordingBroker) -> None:
        self.url, self.name, self.broker = url, name, broker
        self.placed: list[str] = []
        self.refused: list[tuple[ErrorKind, int | None]] = []

    async def start(self) -> None:
        self.nc = await connect(self.url, TTL, name=self.name)
        self.keeper = LeaseKeeper(self.nc, self.name, partitions=4, ttl_s=TTL)
        self.slots = AccountSlots(
            self.nc,
            self.name,
            ACCOUNT,
            limits=KITE_ORDER_LIMITS,
            margin=0.05,
            request_timeout=2.0,
            ttl_s=TTL,
            wait_s=2.0,
            live_nodes=lambda: self.keeper.live_nodes,
        )
        self.orders = SlottedOrders(self.broker, self.slots.client)
        await self.keeper.start()
        await self.slots.start()

    def holds(self) -> bool:
        return self.slots.lease.token() is not None

    async def place(self, n: int) -> None:
        """Place order `n` as the executor does: a 429 (nothing sent) is sent again."""
        trigger = make_trigger(id=f"{self.name}-{n}")
        intent = order_for(trigger, Leg.FIRST, f"{self.name}-{n}")
        while True:
            try:
                self.placed.append(await self.orders.place(intent))
                return
            except BrokerError as error:
                self.refused.append((error.kind, error.http_status))
                await asyncio.sleep(0.02)

    async def die(self) -> None:
        """As SIGKILL: nothing renewed or released, nothing answered any more."""
        tasks = [self.keeper._task, self.keeper._watchdog, *self.slots.lease._tasks]
        for task in tasks:
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.nc.close()

    async def stop(self) -> None:
        if self.nc.is_closed:
            return
        await self.slots.stop()
        await self.keeper.stop()
        await self.nc.close()


@pytest.fixture
async def nodes(nats_url: str) -> AsyncIterator[dict[str, Node]]:
    broker = RecordingBroker()
    started = {name: Node(nats_url, name, broker) for name in NODES}
    for node in started.values():
        await node.start()
    yield started
    for node in started.values():
        await node.stop()


async def one_holder(nodes: dict[str, Node], live: set[str]) -> str:
    """Wait until the preferred live node alone holds the account; its name."""
    preferred = preferred_node(ACCOUNT, live)
    assert preferred is not None

    def settled() -> bool:
        return [n for n in live if nodes[n].holds()] == [preferred]

    await eventually(settled, within=10, interval=0.02)
    return preferred


def test_the_account_id_hides_the_key_and_names_the_broker() -> None:
    assert ACCOUNT.startswith("kite-")
    assert "api-key" not in ACCOUNT
    assert account_id("Kite", "a") != account_id("Kite", "b")
    assert account_id("Kite", "a") != account_id("Upstox", "a")


async def test_orders_from_three_nodes_share_one_accounts_limit(nodes: dict[str, Node]) -> None:
    """45 orders at once, 15 on each node: at most 10 reach the broker in any second."""
    await one_holder(nodes, set(NODES))
    await asyncio.sleep(1.1)  # past the new holder's first window
    broker = nodes["node-1"].broker
    await asyncio.gather(*(node.place(n) for node in nodes.values() for n in range(15)))
    assert len(broker.arrivals) == 45
    assert set(broker.tags.values()) == {1}
    assert busiest_second(sorted(broker.arrivals)) <= PER_SECOND
    # Each node's own slots would have let 10 a second go from each: 15 in the first second.
    assert broker.arrivals[-1] - broker.arrivals[0] >= 4.0


async def test_the_holders_death_mid_flight_loses_and_duplicates_nothing(
    nodes: dict[str, Node],
) -> None:
    """The account's holder dies (SIGKILL) while the others' orders queue for slots: a
    survivor takes the account, every order is placed exactly once, and the limit holds
    across the change of holder."""
    holder = await one_holder(nodes, set(NODES))
    await asyncio.sleep(1.1)
    survivors = [n for n in NODES if n != holder]
    broker = nodes[holder].broker
    placing = [asyncio.create_task(nodes[name].place(n)) for name in survivors for n in range(20)]
    # Die with slots granted and orders still waiting in the holder's queue.
    await eventually(lambda: len(broker.arrivals) >= 12, within=10, interval=0.005)
    await nodes[holder].die()
    died_at = asyncio.get_running_loop().time()
    new_holder = await one_holder(nodes, set(survivors))
    await within(asyncio.gather(*placing), 30)
    assert new_holder != holder
    assert len(broker.arrivals) == 40
    assert {r for s in survivors for r in nodes[s].refused} <= {(ErrorKind.RETRY, 429)}
    assert sorted(broker.tags) == sorted(f"{s}-{n}" for s in survivors for n in range(20))
    assert set(broker.tags.values()) == {1}
    assert busiest_second(sorted(broker.arrivals)) <= PER_SECOND
    after = [t - died_at for t in broker.arrivals if t > died_at]
    print(f"\nholder {holder} died; {new_holder} took over; first order after {after[0]:.2f} s")


async def test_a_handed_off_account_keeps_the_window(nodes: dict[str, Node]) -> None:
    """A deliberate release (SIGTERM) grants nothing more, holds the key until its last
    order left the 1 s window, and the next holder starts at once: the limit holds."""
    holder = await one_holder(nodes, set(NODES))
    await asyncio.sleep(1.1)
    survivors = [n for n in NODES if n != holder]
    broker = nodes[holder].broker
    placing = [asyncio.create_task(nodes[name].place(n)) for name in survivors for n in range(15)]
    await eventually(lambda: len(broker.arrivals) >= 8, within=10, interval=0.005)
    await nodes[holder].stop()
    await within(asyncio.gather(*placing), 30)
    assert len(broker.arrivals) == 30
    assert set(broker.tags.values()) == {1}
    assert busiest_second(sorted(broker.arrivals)) <= PER_SECOND
