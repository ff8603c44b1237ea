"""Ticks over NATS: one node holds the broker's feed for the cluster, every node gets its
partitions' ticks (docs/cluster.md, "Ticks").

- **The feed lease** (`FeedLease`): the key `feed.<api key>.0` in the lease bucket, taken
  with `create`, renewed with `update(last=)`, valid locally until 0.9 x TTL after the
  last renewal was sent, exactly like a partition lease (`hmt.cluster.leases`). Its
  holder runs the broker's feed; one lease carries all of the key's connections (Kite:
  3 x 3,000 instruments, the ticker's own plan), so the key's limits hold cluster-wide.
- **The hub** (`TickHub`, on the holder): the broker's feed subscribes the union of
  every partition's instruments (read from the store at the lease's gain and every
  `resync_s`, plus what owners announce on `hmt.feed.want`); each frame's ticks go out
  as one message per partition on core NATS `hmt.ticks.<partition>` (`encode`); the
  last price of each instrument is kept and served on `hmt.last.<partition>` (a new
  owner's hand-off gap); the feed's state goes out on `hmt.feed.state` at every link
  event and every `heartbeat_s`; order updates on `hmt.feed.orders`.
- **The listener** (`TickListener`, on every node, the holder too): subscribes
  `hmt.ticks.<p>` for the partitions it holds, asks `hmt.last.<p>` right after, and
  hands the prices to the engine's callbacks; it turns the holder's state, a silent
  holder, its own lost NATS connection and lost tick messages (a gap in a partition's
  sequence) into the engine's "feed lost" and "connected" events.

Prices are integers in the broker's wire units, as the engine takes them. Nothing here
imports the engine, the store or a broker: the composition plugs them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import struct
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from hmt.cluster.leases import (
    BUCKET_OPEN_S,
    DEFAULT_BUCKET,
    SAFE_FRACTION,
    bucket_or_later,
    open_bucket,
)
from hmt.core.partitions import partition_of
from hmt.waits import within

log = logging.getLogger(__name__)

TICKS = "hmt.ticks."  # + partition
LAST = "hmt.last."  # + partition: a request for the partition's last prices
WANT = "hmt.feed.want"  # instruments an owner needs carried
STATE = "hmt.feed.state"  # the holder's feed state (JSON)
ORDERS = "hmt.feed.orders"  # the broker's order updates (JSON), for every node's fills

# --- the message --------------------------------------------------------------------------
# Header: kind, price width (4 or 8 bytes), the partition's sequence number, the feed
# lease's token (a new holder, a new epoch). Then columns: n instrument ids (u32), then
# n prices per column (ltp; ltp, high, low; ltp, high, low, bid, ask). Columns of
# machine integers: `array` encodes and decodes them in C, no per-tick struct call.
HEADER = struct.Struct("<BBIQ")
LTP, RANGE, DEPTH = 0, 1, 2
COLUMNS = {LTP: 1, RANGE: 3, DEPTH: 5}
_I32 = (-(2**31), 2**31 - 1)
_SWAP = sys.byteorder != "little"  # the wire is little-endian


@dataclass(frozen=True, slots=True)
class Batch:
    """One decoded message: `columns[0]` the last prices, then high, low, bid, ask."""

    kind: int
    seq: int
    epoch: int
    tokens: Sequence[int]
    columns: tuple[Sequence[int], ...]


def encode(
    kind: int, seq: int, epoch: int, tokens: Sequence[int], *columns: Sequence[int]
) -> bytes:
    """One message of `len(tokens)` ticks; prices in 4 bytes each when they all fit."""
    if len(columns) != COLUMNS[kind] or any(len(c) != len(tokens) for c in columns):
        raise ValueError("one column per price field, one price per instrument")
    low, high = _I32
    wide = any(v < low or v > high for column in columns for v in column)
    ids = array("I", tokens)
    prices = [array("q" if wide else "i", column) for column in columns]
    if _SWAP:
        for part in (ids, *prices):
            part.byteswap()
    return b"".join(
        [HEADER.pack(kind, 8 if wide else 4, seq, epoch), ids.tobytes()]
        + [p.tobytes() for p in prices]
    )


def decode(data: bytes) -> Batch:
    """A message back into its columns; ValueError if it is not one."""
    if len(data) < HEADER.size:
        raise ValueError("short tick message")
    kind, width, seq, epoch = HEADER.unpack_from(data)
    columns = COLUMNS.get(kind)
    if columns is None or width not in (4, 8):
        raise ValueError(f"unknown tick message kind {kind} or width {width}")
    body = memoryview(data)[HEADER.size :]
    n, rest = divmod(len(body), 4 + columns * width)
    if rest:
        raise ValueError("tick message length is not a whole number of ticks")
    ids = array("I")
    ids.frombytes(body[: 4 * n])
    parts = []
    for c in range(columns):
        start = 4 * n + c * n * width
        column = array("q" if width == 8 else "i")
        column.frombytes(body[start : start + n * width])
        parts.append(column)
    if _SWAP:
        for part in (ids, *parts):
            part.byteswap()
    return Batch(kind, seq, epoch, ids, tuple(parts))


def encode_tokens(tokens: Iterable[int]) -> bytes:
    ids = array("I", tokens)
    if _SWAP:
        ids.byteswap()
    return ids.tobytes()


def decode_tokens(data: bytes) -> list[int]:
    ids = array("I")
    ids.frombytes(data[: len(data) - len(data) % 4])
    if _SWAP:
        ids.byteswap()
    return ids.tolist()


def feed_key(api_key: str, connection: int = 0) -> str:
    """The feed lease's key: `feed.<api key>.<n>` (the key's characters made safe)."""
    return f"feed.{re.sub(r'[^A-Za-z0-9_-]', '_', api_key) or 'default'}.{connection}"


# --- the feed lease -----------------------------------------------------------------------


class FeedLease:
    """One feed connection's lease: taken by whichever node creates the key first."""

    def __init__(
        self,
        nc: Client,
        node_id: str,
        key: str,
        *,
        ttl_s: float,
        bucket: str = DEFAULT_BUCKET,
        on_gained: Callable[[int], None],
        on_lost: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nc, self.node_id, self.key, self.ttl_s, self.bucket = nc, node_id, key, ttl_s, bucket
        self.on_gained, self.on_lost, self.clock = on_gained, on_lost, clock
        self.op_timeout_s = ttl_s / 3
        self._token: int | None = None
        self._revision = 0
        self._renewed_at = 0.0
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def token(self) -> int | None:
        """The lease's token while validly held, else None."""
        if self._token is None or self.clock() >= self._renewed_at + self.ttl_s * SAFE_FRACTION:
            return None
        return self._token

    async def start(self) -> None:
        self._kv = await bucket_or_later(
            self.nc, self.bucket, self.ttl_s, what=f"feed lease {self.key}"
        )
        self._tasks = [
            asyncio.create_task(self._run(), name=f"feed-lease-{self.node_id}"),
            asyncio.create_task(self._watch(), name=f"feed-lease-watch-{self.node_id}"),
        ]

    async def stop(self, *, release: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        revision = self._revision
        held = self._token is not None
        self._lose()
        if release and held and self._kv is not None:
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await within(self._kv.delete(self.key, last=revision), self.op_timeout_s)

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.round()
            except (NatsError, TimeoutError, OSError) as error:
                log.warning("feed lease round failed: %s", type(error).__name__)
            await asyncio.sleep(max(0.0, self.ttl_s / 3 - (self.clock() - started)))

    async def _watch(self) -> None:
        while True:  # expiry must not wait for a round stuck on a silent connection
            await asyncio.sleep(self.ttl_s / 20)
            if self._token is not None and self.token() is None:
                self._lose()

    async def round(self) -> None:
        kv = self._kv
        if kv is None:  # start-up could not open it
            kv = self._kv = await within(
                open_bucket(self.nc, self.bucket, self.ttl_s), BUCKET_OPEN_S
            )
        sent_at = self.clock()
        value = self.node_id.encode()
        if self._token is None:
            try:
                revision = await within(kv.create(self.key, value), self.op_timeout_s)
            except KeyWrongLastSequenceError:
                return  # held by another node
            self._token = self._revision = revision
            self._renewed_at = sent_at
            log.info("feed lease %s gained (token %d)", self.key, revision)
            self._tell(self.on_gained, revision)
            return
        try:
            revision = await within(
                kv.update(self.key, value, last=self._revision), self.op_timeout_s
            )
        except KeyWrongLastSequenceError:
            self._lose()  # expired and taken by another node
            return
        if self._token is not None:
            self._revision, self._renewed_at = revision, sent_at

    def _lose(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            log.info("feed lease %s lost (token %d)", self.key, token)
            self._tell(self.on_lost, token)

    def _tell(self, callback: Callable[[int], None], token: int) -> None:
        try:
            callback(token)
        except Exception:
            log.exception("feed lease callback failed")


# --- the hub: the holder's side ---------------------------------------------------------------


class BrokerFeed(Protocol):
    """What the hub drives: the broker's feed (the composition adapts Kite's)."""

    def subscribe(self, tokens: Iterable[int]) -> None: ...
    def unsubscribe(self, tokens: Iterable[int]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    @property
    def connected(self) -> bool: ...
    @property
    def state(self) -> str: ...
    def carried(self) -> set[int]: ...


class TickHub:
    """The feed holder's work: carry every partition's instruments, republish per partition."""

    def __init__(
        self,
        nc: Client,
        node_id: str,
        partitions: int,
        feed: BrokerFeed,
        *,
        instruments: Callable[[], Awaitable[set[int]]],
        heartbeat_s: float = 0.5,
        resync_s: float = 30.0,
    ) -> None:
        self.nc, self.node_id, self.partitions, self.feed = nc, node_id, partitions, feed
        self.instruments = instruments
        self.heartbeat_s, self.resync_s = heartbeat_s, resync_s
        self.epoch: int | None = None  # the feed lease's token while serving
        self.published = self.messages = 0
        self.last: dict[int, dict[int, int]] = {}  # partition -> instrument -> last price
        self._partition: dict[int, int] = {}  # instrument -> partition, computed once
        self._seq: dict[int, int] = {}
        # (partition, kind) -> records of this frame: a frame may mix kinds (an index's
        # ticks carry no depth), each kind is its own message.
        self._pending: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        self._flush_scheduled = False
        self._wanted: set[int] = set()  # announced since the last resync
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._current: int | None = None  # the feed lease's token while held
        self._switch: asyncio.Task[None] | None = None  # the latest gain's or loss's work
        self._event: str = "started"

    # --- the broker feed's callbacks (the tick path: never await) -------------------------

    def ltp(self, token: int, price: int) -> None:
        self._add(token, LTP, (token, price))

    def tick(
        self,
        token: int,
        price: int,
        high: int,
        low: int,
        bid: int | None = None,
        ask: int | None = None,
    ) -> None:
        if bid is None or ask is None:
            self._add(token, RANGE, (token, price, high, low))
        else:
            self._add(token, DEPTH, (token, price, high, low, bid, ask))

    def _add(self, token: int, kind: int, record: tuple[int, ...]) -> None:
        if self.epoch is None:
            return  # not (or no longer) the holder: nothing goes out
        partition = self._partition.get(token)
        if partition is None:
            partition = self._partition[token] = partition_of(token, self.partitions)
        self.last.setdefault(partition, {})[token] = record[1]
        self._pending.setdefault((partition, kind), []).append(record)
        if not self._flush_scheduled:
            # The ticker hands a whole frame on without yielding: flushing on the loop's
            # next turn sends one message per partition per frame.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        epoch = self.epoch
        if epoch is None or not pending:
            return
        out = []
        for (partition, kind), records in pending.items():
            seq = self._seq[partition] = self._seq.get(partition, 0) + 1
            columns = list(zip(*records, strict=True))
            out.append((f"{TICKS}{partition}", encode(kind, seq, epoch, *columns)))
            self.published += len(records)
        self.messages += len(out)
        task = asyncio.get_running_loop().create_task(self._publish(out))
        task.add_done_callback(_report)

    async def _publish(self, out: list[tuple[str, bytes]]) -> None:
        for subject, data in out:
            await self.nc.publish(subject, data)

    def event(self, name: str) -> None:
        """A link event of the broker's feed: the state goes out now, not at the next beat."""
        self._event = name
        if self.epoch is not None:
            task = asyncio.get_running_loop().create_task(self._say())
            task.add_done_callback(_report)

    def order_update(self, data: dict[str, Any]) -> None:
        if self.epoch is not None:
            task = asyncio.get_running_loop().create_task(
                self.nc.publish(ORDERS, json.dumps(data, default=str).encode())
            )
            task.add_done_callback(_report)

    # --- the lease's callbacks --------------------------------------------------------------

    def gained(self, token: int) -> None:
        self._current = token
        self._then(lambda: self._serve(token))

    def lost(self, token: int) -> None:
        self._current = self.epoch = None  # at once: no tick goes out from here on
        self._then(self._unserve)

    def _then(self, work: Callable[[], Awaitable[None]]) -> None:
        """Gains and losses take effect one after the other, in the order they came."""
        previous = self._switch

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await previous
            await work()

        self._switch = asyncio.get_running_loop().create_task(run())
        self._switch.add_done_callback(_report)

    async def _serve(self, token: int) -> None:
        if self._current != token:
            return  # lost before its turn came
        # Announcements and last-price requests are listened to before the store is read:
        # an instrument armed after the read is announced to this holder.
        self._subs = [
            await self.nc.subscribe(WANT, cb=self._on_want),
            await self.nc.subscribe(f"{LAST}*", cb=self._on_last),
        ]
        await self.nc.flush()
        self._seq.clear()
        self.last.clear()
        await self._resync()
        if self._current != token:
            return  # lost meanwhile: the loss's turn comes next
        self.epoch = token
        await self.feed.start()
        self._tasks = [
            asyncio.create_task(self._beat(), name="feed-heartbeat"),
            asyncio.create_task(self._resyncs(), name="feed-resync"),
        ]
        log.info("feed holder %s serving (token %d)", self.node_id, token)

    async def _unserve(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for sub in self._subs:
            with contextlib.suppress(NatsError, OSError):
                await sub.unsubscribe()
        self._subs = []
        await self.feed.stop()
        self.feed.unsubscribe(self.feed.carried())  # the next lease starts from the store
        self.last.clear()
        self._pending.clear()

    async def stop(self) -> None:
        """Stop serving (the lease is gone or going) and wait until it is done."""
        self._current = self.epoch = None
        self._then(self._unserve)
        switch = self._switch
        if switch is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await switch

    async def _resync(self) -> None:
        """Carry the store's active instruments and the owners' announcements; drop the rest."""
        wanted, self._wanted = self._wanted, set()
        try:
            stored = await self.instruments()
        except Exception:
            log.exception("feed instruments unreadable: carrying what is carried")
            self._wanted |= wanted
            return
        union = stored | wanted
        carried = self.feed.carried()
        self._carry(union - carried)
        gone = carried - union
        if gone:
            self.feed.unsubscribe(gone)

    def _carry(self, tokens: set[int]) -> None:
        if not tokens:
            return
        try:
            self.feed.subscribe(tokens)
        except ValueError as error:  # the key's connection limits (SubscriptionLimitError)
            log.error("feed subscription limit: %s", error)

    async def _resyncs(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s)
            await self._resync()

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(NatsError, OSError):
                await self._say()
            await asyncio.sleep(self.heartbeat_s)

    async def _say(self) -> None:
        epoch = self.epoch
        if epoch is None:
            return
        state = {
            "node": self.node_id,
            "epoch": epoch,
            "connected": self.feed.connected,
            "state": self.feed.state,
            "event": self._event,
            "instruments": len(self.feed.carried()),
        }
        await self.nc.publish(STATE, json.dumps(state).encode())

    async def _on_want(self, msg: Msg) -> None:
        tokens = set(decode_tokens(msg.data))
        self._wanted |= tokens
        if self.epoch is not None:
            self._carry(tokens - self.feed.carried())

    async def _on_last(self, msg: Msg) -> None:
        epoch = self.epoch
        if epoch is None or not msg.reply:
            return
        try:
            partition = int(msg.subject.removeprefix(LAST))
        except ValueError:
            return
        prices = self.last.get(partition, {})
        data = encode(LTP, self._seq.get(partition, 0), epoch, list(prices), list(prices.values()))
        with contextlib.suppress(NatsError, OSError):
            await msg.respond(data)


def _report(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        log.warning("tick publish failed: %s", type(error).__name__)


# --- the listener: every node's side -----------------------------------------------------------


@dataclass(slots=True)
class _Held:
    sub: Subscription | None = None
    epoch: int = 0
    seq: int = 0


class TickListener:
    """A node's partitions' ticks from NATS, and the feed's state as the engine needs it."""

    def __init__(
        self,
        nc: Client,
        *,
        on_ltp: Callable[[int, int], object],
        on_range: Callable[[int, int, int], object],
        on_depth: Callable[[int, int, int, int], object],
        on_lost: Callable[[str, str], object],
        on_connected: Callable[[], object],
        on_order_update: Callable[[dict[str, Any]], object],
        stale_s: float,
        last_timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nc = nc
        self.on_ltp, self.on_range, self.on_depth = on_ltp, on_range, on_depth
        self.on_lost, self.on_connected, self.on_order_update = (
            on_lost,
            on_connected,
            on_order_update,
        )
        self.stale_s, self.last_timeout_s, self.clock = stale_s, last_timeout_s, clock
        self.wanted: set[int] = set()
        self.holder: str | None = None
        self.epoch: int | None = None
        self.holder_connected = False
        self.holder_state = "no_feed_holder"
        self.heard_at: float | None = None  # the holder's last word (state or ticks)
        self.ticks = self.messages = self.gaps = self.reconnects = 0
        self.bad = 0
        self._held: dict[int, _Held] = {}
        self._announced: set[int] = set()
        self._blind = True  # until a holder says its feed is connected
        self._subs: list[Subscription] = []
        self._monitor: asyncio.Task[None] | None = None
        self._nats_up = True

    @property
    def connected(self) -> bool:
        fresh = self.heard_at is not None and self.clock() - self.heard_at < self.stale_s
        return self.nc.is_connected and fresh and self.holder_connected

    @property
    def state(self) -> str:
        if not self.nc.is_connected:
            return "nats_disconnected"
        if self.heard_at is None or self.clock() - self.heard_at >= self.stale_s:
            return "no_feed_holder"
        return self.holder_state

    def held(self) -> set[int]:
        return set(self._held)

    async def start(self) -> None:
        self._subs = [
            await self.nc.subscribe(STATE, cb=self._on_state),
            await self.nc.subscribe(ORDERS, cb=self._on_orders),
        ]
        self._monitor = asyncio.create_task(self._watch(), name="tick-listener-watch")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        subs = self._subs + [h.sub for h in self._held.values() if h.sub is not None]
        self._subs, self._held = [], {}
        for sub in subs:
            with contextlib.suppress(NatsError, OSError):
                await sub.unsubscribe()

    # --- partitions (the lease keeper's callbacks: never block) -------------------------

    def hold(self, partition: int) -> None:
        if partition in self._held:
            return
        held = self._held[partition] = _Held()
        task = asyncio.get_running_loop().create_task(self._hold(partition, held))
        task.add_done_callback(_report)

    def release(self, partition: int) -> None:
        held = self._held.pop(partition, None)
        if held is not None and held.sub is not None:
            task = asyncio.get_running_loop().create_task(held.sub.unsubscribe())
            task.add_done_callback(_report)

    async def _hold(self, partition: int, held: _Held) -> None:
        async def on_ticks(msg: Msg) -> None:
            self._on_ticks(partition, held, msg.data)

        sub = await self.nc.subscribe(f"{TICKS}{partition}", cb=on_ticks)
        if self._held.get(partition) is not held:
            await sub.unsubscribe()  # released meanwhile
            return
        held.sub = sub
        await self.nc.flush()  # subscribed on the server before the last prices are asked
        try:
            reply = await self.nc.request(f"{LAST}{partition}", b"", timeout=self.last_timeout_s)
        except (NatsError, TimeoutError, OSError):
            return  # no holder now: the next one's snapshot ticks come on the subscription
        if self._held.get(partition) is not held or not reply.data:
            return
        try:
            batch = decode(reply.data)
        except ValueError:
            self.bad += 1
            return
        if held.epoch == batch.epoch:
            held.seq = max(held.seq, batch.seq)
        elif held.epoch == 0:
            held.epoch, held.seq = batch.epoch, batch.seq
        self._deliver(batch)

    def _on_ticks(self, partition: int, held: _Held, data: bytes) -> None:
        try:
            batch = decode(data)
        except ValueError:
            self.bad += 1
            return
        self.heard_at = self.clock()
        if batch.epoch == held.epoch and batch.seq > held.seq + 1:
            # Messages lost between the holder and this node (a slow consumer, a cut
            # connection): what happened meanwhile is a blind spot, as a dropped socket.
            self.gaps += 1
            self.on_lost("reconnect", f"{batch.seq - held.seq - 1} tick messages lost (NATS)")
        if batch.epoch != held.epoch or batch.seq > held.seq:
            held.epoch, held.seq = batch.epoch, batch.seq
        self._deliver(batch)

    def _deliver(self, batch: Batch) -> None:
        self.messages += 1
        self.ticks += len(batch.tokens)
        on_ltp = self.on_ltp
        tokens, prices = batch.tokens, batch.columns[0]
        for i in range(len(tokens)):
            on_ltp(tokens[i], prices[i])
        if batch.kind != LTP:
            highs, lows = batch.columns[1], batch.columns[2]
            for i in range(len(tokens)):
                self.on_range(tokens[i], highs[i], lows[i])
        if batch.kind == DEPTH:
            bids, asks = batch.columns[3], batch.columns[4]
            for i in range(len(tokens)):
                self.on_depth(tokens[i], prices[i], bids[i], asks[i])

    # --- instruments wanted -------------------------------------------------------------

    def want(self, tokens: Iterable[int]) -> None:
        """Ask the holder to carry `tokens` (once per holder; it also reads the store)."""
        self.wanted.update(tokens)
        self._announce()

    def unwant(self, tokens: Iterable[int]) -> None:
        # Local only: the holder drops what no active trigger watches at its next resync
        # (another node may own it now: a lost partition's instruments stay carried).
        self.wanted.difference_update(tokens)

    def _announce(self) -> None:
        new = self.wanted - self._announced
        if not new or not self.nc.is_connected:
            return
        self._announced |= new
        task = asyncio.get_running_loop().create_task(self.nc.publish(WANT, encode_tokens(new)))
        task.add_done_callback(_report)

    # --- the holder's state ---------------------------------------------------------------

    async def _on_state(self, msg: Msg) -> None:
        try:
            state = json.loads(msg.data)
            epoch, node, connected = (
                int(state["epoch"]),
                str(state["node"]),
                bool(state["connected"]),
            )
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        if self.epoch is not None and epoch < self.epoch:
            return  # a former holder's last words
        self.heard_at = self.clock()
        self.holder_state = str(state.get("state", ""))
        if epoch != self.epoch:
            if self.epoch is not None:
                self._lost("reconnect", f"feed holder changed to {node}")
                self.reconnects += 1
            self.epoch, self.holder = epoch, node
            self._announced.clear()  # tell the new holder everything this node needs
            self._announce()
        if connected and not self.holder_connected:
            self.holder_connected = True
            self._blind = False
            self.on_connected()
        elif not connected and self.holder_connected:
            self.holder_connected = False
            kind = "stall" if state.get("event") == "watchdog" else "reconnect"
            self._lost(kind, f"feed holder {node}: {self.holder_state}")

    async def _on_orders(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            self.bad += 1
            return
        if isinstance(data, dict):
            self.on_order_update(data)

    def _lost(self, kind: str, reason: str) -> None:
        if self._blind:
            return  # blind already: the first reason is kept
        self._blind = True
        self.holder_connected = False
        self.on_lost(kind, reason)

    async def _watch(self) -> None:
        interval = min(0.1, self.stale_s / 10)
        while True:
            await asyncio.sleep(interval)
            up = self.nc.is_connected
            if not up and self._nats_up:
                self._lost("reconnect", "NATS connection lost")
            if up and not self._nats_up:
                self._announced.clear()  # the holder may have missed announcements
                self._announce()
            self._nats_up = up
            if self.heard_at is not None and self.clock() - self.heard_at >= self.stale_s:
                self._lost("stall", f"no word from a feed holder for {self.stale_s:g} s")
