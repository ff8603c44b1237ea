"""The composition's cluster ticks: Kite's ticker held by the feed lease's node, and the
engine's `Feed` port fed from NATS on every node (docs/cluster.md, "Ticks").

`hmt.compose.build` makes a `ClusterFeed` when HMT_CLUSTER_URL is set: the ticker it
builds hands its ticks to the hub (`kite_callbacks`) rather than to the engine, and
the engine's feed is this object, which starts the feed lease and the listener once
`attach` has given it the node's NATS connection and lease keeper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nats.aio.client import Client
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.cluster.leases import LeaseKeeper
from hmt.cluster.ticks import FeedLease, TickHub, TickListener, feed_key
from hmt.compose.kite import TickerFeed
from hmt.core.lifecycle import Status
from hmt.engine.ports import FeedStatus
from hmt.kite.ticker_messages import OrderUpdate
from hmt.kite.ticker_state import LinkEvent, LinkEventKind
from hmt.kite.ticks import FullTick, LtpTick, Tick
from hmt.store.db import Database
from hmt.store.tables import gtt_orders

# The holder says how its feed is every HEARTBEAT_S; a node that heard nothing for
# STALE_BEATS of them is blind (the holder died: its lease moves within a TTL and a third).
HEARTBEAT_S = 0.5
STALE_BEATS = 4


async def active_instruments(db: Database) -> set[int]:
    """Every instrument an active trigger watches, in any partition: what the feed
    holder carries (one indexed scan of the active rows)."""
    t = gtt_orders
    watched = func.coalesce(t.c.watch_token, t.c.instrument_token)
    query = select(watched).where(t.c.status == Status.ACTIVE.value).distinct()

    async def read(conn: AsyncConnection) -> set[int]:
        return {int(row[0]) for row in await conn.execute(query)}

    return await db.transaction(read, write=False)


class KiteHubFeed:
    """Kite's ticker as the hub drives it (`hmt.cluster.ticks.BrokerFeed`)."""

    def __init__(self, feed: TickerFeed) -> None:
        self.feed = feed

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.feed.subscribe(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.feed.unsubscribe(tokens)

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()

    @property
    def connected(self) -> bool:
        return self.feed.connected

    @property
    def state(self) -> str:
        return self.feed.status().state

    def carried(self) -> set[int]:
        return set(self.feed.ticker.subscriptions())


def _to_hub(hub: TickHub, frame: tuple[Tick, ...]) -> None:
    """A quote or full frame's ticks: the day's range, and a full tick's best bid and ask."""
    for tick in frame:
        if isinstance(tick, LtpTick):
            hub.ltp(tick.instrument_token, tick.last_price)
        elif isinstance(tick, FullTick):
            depth = tick.depth  # (quantity, price, orders) x 5 bids, then x 5 asks
            hub.tick(
                tick.instrument_token, tick.last_price, tick.high, tick.low, depth[1], depth[16]
            )
        else:
            hub.tick(tick.instrument_token, tick.last_price, tick.high, tick.low)


class ClusterFeed:
    """The engine's `Feed` on a cluster node: its partitions' ticks from NATS.

    The broker's ticker runs only while this node holds the feed lease (then it also
    serves every other node); the engine never knows which."""

    def __init__(self, ranged: bool) -> None:
        self.ranged = ranged
        self.broker: TickerFeed | None = None
        self.hub: TickHub | None = None
        self.listener: TickListener | None = None
        self.lease: FeedLease | None = None
        self._started = False

    # --- the ticker's callbacks, on the holder ----------------------------------------

    def kite_callbacks(
        self, session_expired: Callable[[str], object]
    ) -> tuple[
        Callable[[int, int], object] | None,
        Callable[[tuple[Tick, ...]], object] | None,
        Callable[[LinkEvent], object],
        Callable[[OrderUpdate], object],
    ]:
        """on_ltp, on_ticks, on_event, on_order_update for the ticker: all to the hub."""

        def ltp(token: int, price: int) -> None:
            if self.hub is not None:
                self.hub.ltp(token, price)

        def ticks(frame: tuple[Tick, ...]) -> None:
            if self.hub is not None:
                _to_hub(self.hub, frame)

        def event(link: LinkEvent) -> None:
            # The ticker's 403 is this node's session expiring, as on one node; every
            # node's engine hears of the feed's state through the listener.
            if link.kind is LinkEventKind.TOKEN_INVALID:
                session_expired(link.reason)
            if self.hub is not None:
                self.hub.event(link.kind.value)

        def order(update: OrderUpdate) -> None:
            if self.hub is not None:
                self.hub.order_update(dict(update.data))

        return (None, ticks, event, order) if self.ranged else (ltp, None, event, order)

    # --- wiring -------------------------------------------------------------------------

    def attach(
        self,
        nc: Client,
        keeper: LeaseKeeper,
        api_key: str,
        *,
        instruments: Callable[[], Awaitable[set[int]]],
        on_ltp: Callable[[int, int], object],
        on_range: Callable[[int, int, int], object],
        on_depth: Callable[[int, int, int, int], object],
        on_lost: Callable[[str, str], object],
        on_connected: Callable[[], object],
        on_order_update: Callable[[dict[str, Any]], object],
    ) -> None:
        """The node's NATS connection and keeper: the listener follows the keeper's
        partitions (subscribed before the engine loads them), the hub the feed lease."""
        assert self.broker is not None, "the ticker first"
        node = keeper.node_id
        beat = min(HEARTBEAT_S, keeper.ttl_s / 3)
        self.hub = TickHub(
            nc,
            node,
            keeper.partitions,
            KiteHubFeed(self.broker),
            instruments=instruments,
            heartbeat_s=beat,
        )
        self.lease = FeedLease(
            nc,
            node,
            feed_key(api_key),
            ttl_s=keeper.ttl_s,
            bucket=keeper.bucket,
            on_gained=self.hub.gained,
            on_lost=self.hub.lost,
        )
        self.listener = listener = TickListener(
            nc,
            on_ltp=on_ltp,
            on_range=on_range,
            on_depth=on_depth,
            on_lost=on_lost,
            on_connected=on_connected,
            on_order_update=on_order_update,
            stale_s=beat * STALE_BEATS,
        )
        gained, lost = keeper.on_gained, keeper.on_lost

        def on_gained(partition: int, token: int) -> None:
            listener.hold(partition)  # subscribed before the engine's load begins
            gained(partition, token)

        def on_partition_lost(partition: int, token: int) -> None:
            lost(partition, token)
            listener.release(partition)

        keeper.on_gained, keeper.on_lost = on_gained, on_partition_lost

    async def release(self) -> None:
        """Give the feed lease back while NATS is still open (a clean leave)."""
        if self.lease is not None:
            await self.lease.stop(release=True)
        if self.hub is not None:
            await self.hub.stop()

    # --- the engine's Feed ----------------------------------------------------------------

    def subscribe(self, tokens: Iterable[int]) -> None:
        if self.listener is not None:
            self.listener.want(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        if self.listener is not None:
            self.listener.unwant(tokens)

    def set_access_token(self, access_token: str) -> None:
        if self.broker is not None:
            self.broker.set_access_token(access_token)

    async def start(self) -> None:
        if self._started or self.listener is None or self.lease is None:
            return
        self._started = True
        await self.listener.start()
        await self.lease.start()

    async def stop(self) -> None:
        await self.release()
        if self.listener is not None:
            await self.listener.stop()
        self._started = False

    @property
    def connected(self) -> bool:
        return self.listener is not None and self.listener.connected

    def status(self) -> FeedStatus:
        listener = self.listener
        if listener is None:
            return FeedStatus(state="not_started", connected=False)
        age = None if listener.heard_at is None else listener.clock() - listener.heard_at
        holding = self.lease is not None and self.lease.token() is not None
        return FeedStatus(
            state=listener.state,
            connected=listener.connected,
            connections=1 if holding else 0,  # broker connections held here (0: another node)
            subscribed_tokens=len(listener.wanted),
            reconnects=listener.reconnects,
            bad_frames={"nats_bad": listener.bad, "nats_gaps": listener.gaps},
            last_frame_age_s=age,
            ticks=listener.ticks,
        )
