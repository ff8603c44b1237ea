"""Ticks over NATS (hmt.cluster.ticks): the message codec, and on a real nats-server the
feed lease, the hub's republishing per partition and each node's listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from hmt.cluster.connection import connect
from hmt.cluster.leases import LeaseKeeper
from hmt.cluster.ticks import (
    DEPTH,
    HEADER,
    LTP,
    RANGE,
    FeedLease,
    TickHub,
    TickListener,
    decode,
    decode_tokens,
    encode,
    encode_tokens,
    feed_key,
)
from hmt.core.partitions import assignment, partition_of
from tests.support.eventually import eventually

P = 8
TTL = 1.5

# --- the codec ------------------------------------------------------------------------

prices = st.integers(min_value=-(2**63), max_value=2**63 - 1)
tokens = st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=300)


@given(tokens=tokens, data=st.data(), kind=st.sampled_from([LTP, RANGE, DEPTH]))
def test_a_message_decodes_to_what_was_encoded(
    tokens: list[int], data: st.DataObject, kind: int
) -> None:
    columns = [
        data.draw(st.lists(prices, min_size=len(tokens), max_size=len(tokens)))
        for _ in range({LTP: 1, RANGE: 3, DEPTH: 5}[kind])
    ]
    batch = decode(encode(kind, 7, 2**40, tokens, *columns))
    assert (batch.kind, batch.seq, batch.epoch) == (kind, 7, 2**40)
    assert list(batch.tokens) == tokens
    assert [list(c) for c in batch.columns] == columns


def test_prices_take_four_bytes_when_they_fit_and_eight_when_not() -> None:
    narrow = encode(LTP, 1, 1, [256265, 738561], [2_345_605, -5])
    assert len(narrow) == HEADER.size + 2 * (4 + 4)  # 8 bytes a tick, as Kite's LTP packet
    wide = encode(LTP, 1, 1, [1], [2**31])  # a currency future's price at 10^7 a rupee
    assert len(wide) == HEADER.size + 4 + 8
    assert list(decode(wide).columns[0]) == [2**31]


def test_a_damaged_message_is_refused() -> None:
    good = encode(RANGE, 1, 1, [1, 2], [3, 4], [5, 6], [7, 8])
    for bad in (good[:5], good[:-1], bytes([9]) + good[1:], good[:1] + bytes([3]) + good[2:]):
        with pytest.raises(ValueError, match="tick message"):
            decode(bad)
    with pytest.raises(ValueError, match="one column per price field"):
        encode(LTP, 1, 1, [1, 2], [3])


def test_announced_tokens_and_the_feed_key() -> None:
    assert decode_tokens(encode_tokens([1, 2**32 - 1])) == [1, 2**32 - 1]
    assert feed_key("abc.def*>") == "feed.abc_def__.0"


# --- on a real nats-server -----------------------------------------------------------------


class FakeBroker:
    """The broker's feed as the hub drives it: records what it is told to carry."""

    def __init__(self) -> None:
        self.tokens: set[int] = set()
        self.running = False
        self.starts = 0

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.tokens |= set(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.tokens -= set(tokens)

    async def start(self) -> None:
        self.running = True
        self.starts += 1

    async def stop(self) -> None:
        self.running = False

    @property
    def connected(self) -> bool:
        return self.running

    @property
    def state(self) -> str:
        return "connected" if self.running else "stopped"

    def carried(self) -> set[int]:
        return set(self.tokens)


@dataclass
class Node:
    """One node's keeper, feed lease, hub and listener, as the composition wires them."""

    name: str
    nc: Client
    keeper: LeaseKeeper
    lease: FeedLease
    hub: TickHub
    listener: TickListener
    broker: FakeBroker
    got: list[tuple[int, int]] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)
    connected: int = 0

    async def stop(self, *, release: bool = True) -> None:
        await self.lease.stop(release=release)
        await self.hub.stop()
        await self.listener.stop()
        await self.keeper.stop(release=release)
        await self.nc.close()


STORED = {101, 202, 303, 404, 505, 606, 707, 808}  # "the store's active instruments"


async def make_node(url: str, name: str) -> Node:
    nc = await connect(url, TTL, name=name)
    broker = FakeBroker()

    async def instruments() -> set[int]:
        return set(STORED)

    hub = TickHub(nc, name, P, broker, instruments=instruments, heartbeat_s=0.2)
    lease = FeedLease(nc, name, feed_key("key"), ttl_s=TTL, on_gained=hub.gained, on_lost=hub.lost)
    node: Node
    listener = TickListener(
        nc,
        on_ltp=lambda token, price: node.got.append((token, price)),
        on_range=lambda *_: None,
        on_depth=lambda *_: None,
        on_lost=lambda kind, reason: node.lost.append((kind, reason)),
        on_connected=lambda: setattr(node, "connected", node.connected + 1),
        on_order_update=lambda data: None,
        stale_s=0.8,
    )
    keeper = LeaseKeeper(
        nc,
        name,
        partitions=P,
        ttl_s=TTL,
        on_gained=lambda p, t: listener.hold(p),
        on_lost=lambda p, t: listener.release(p),
    )
    node = Node(name, nc, keeper, lease, hub, listener, broker)
    await listener.start()
    await keeper.start()
    await lease.start()
    return node


@pytest.fixture
async def nodes(nats_url: str) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        made = []
        for name in ("n1", "n2", "n3"):
            node = await make_node(nats_url, name)
            stack.push_async_callback(node.stop)
            made.append(node)
        yield made


def holder(nodes: list[Node]) -> Node | None:
    serving = [n for n in nodes if n.hub.epoch is not None]
    assert len(serving) <= 1, [n.name for n in serving]
    return serving[0] if serving else None


async def settled(nodes: list[Node]) -> Node:
    """One holder serving, every partition held by its preferred node, every listener up."""

    preferred = assignment(P, {n.name for n in nodes})

    def ready() -> bool:
        held = {p: n.name for n in nodes for p in n.keeper.held()}
        up = all(n.listener.connected and n.listener.held() == set(n.keeper.held()) for n in nodes)
        return holder(nodes) is not None and held == preferred and up

    await eventually(ready, within=10, interval=0.05)
    found = holder(nodes)
    assert found is not None
    return found


def owner(nodes: list[Node], token: int) -> Node:
    partition = partition_of(token, P)
    (found,) = [n for n in nodes if partition in n.keeper.held()]
    return found


async def test_ticks_reach_the_owner_of_their_partition_only(nodes: list[Node]) -> None:
    hub_node = await settled(nodes)
    assert hub_node.broker.tokens == STORED
    assert hub_node.broker.running
    await asyncio.sleep(0.2)  # the listeners' subscriptions are on the server
    for node in nodes:
        node.got.clear()
    frame = [(token, 1000 + token) for token in sorted(STORED)]
    for token, price in frame:  # one frame: the ticker hands it on without yielding
        hub_node.hub.ltp(token, price)
    expected = {n.name: [(t, p) for t, p in frame if owner(nodes, t) is n] for n in nodes}
    assert sum(len(v) for v in expected.values()) == len(frame)
    assert sum(1 for v in expected.values() if v) >= 2  # spread over more than one node
    await eventually(
        lambda: {n.name: sorted(n.got) for n in nodes} == expected, within=5, interval=0.02
    )
    await asyncio.sleep(0.3)  # and nothing else arrives later
    assert {n.name: sorted(n.got) for n in nodes} == expected
    # One message per partition of the frame, not one per tick.
    assert hub_node.hub.messages == len({partition_of(t, P) for t, _ in frame})


async def test_an_owner_announces_what_it_needs_and_a_new_owner_gets_last_prices(
    nodes: list[Node],
) -> None:
    hub_node = await settled(nodes)
    new = 999_999
    node = owner(nodes, new)
    node.listener.want([new])  # a trigger armed on an instrument the store read missed
    await eventually(lambda: new in hub_node.broker.tokens, within=3, interval=0.02)
    hub_node.hub.ltp(new, 42)
    await eventually(lambda: (new, 42) in node.got, within=3, interval=0.02)
    # A node that starts listening to the partition (a new owner) is told the last price.
    other = next(n for n in nodes if n is not node)
    other.listener.hold(partition_of(new, P))
    await eventually(lambda: (new, 42) in other.got, within=3, interval=0.02)


async def test_the_feed_lease_moves_when_its_holder_dies_and_ticks_resume(
    nodes: list[Node],
) -> None:
    first = await settled(nodes)
    survivors = [n for n in nodes if n is not first]
    # Its lease is not given back (as after SIGKILL): the others wait for its expiry.
    await first.lease.stop(release=False)
    first.hub.epoch = None  # a dead holder sends nothing
    await first.keeper.stop(release=False)
    await first.listener.stop()
    nodes.remove(first)

    await eventually(lambda: all(n.lost for n in survivors), within=5, interval=0.02)
    second = await settled(survivors)
    assert second.broker.tokens >= STORED
    assert second.broker.starts == 1
    assert all(n.connected >= 2 for n in survivors)  # blind, then connected again
    for node in survivors:
        node.got.clear()
    for token in sorted(STORED):
        second.hub.ltp(token, 7)
    await eventually(
        lambda: sorted(t for n in survivors for t, _ in n.got) == sorted(STORED),
        within=5,
        interval=0.02,
    )
    await first.nc.close()
