"""Partition leases in a JetStream key-value bucket, kept by one asyncio task per node.

The bucket (`hmt_leases` by default) has a time-to-live (`max_age`) of one lease
(`ttl_s`): a key nobody rewrites within it disappears. Keys:

- `node.<id>`: the node's presence, rewritten every round; the live nodes are the
  keys present, and each partition's preferred owner is the rendezvous winner among
  them (`hmt.core.partitions`).
- `partition.<n>`: the lease. A node takes a free partition with `create` (only if
  the key is absent) and renews it every `ttl_s / 3` with `update(last=revision)`,
  which fails if anyone else wrote the key since: then the lease is lost. The
  revision `create` returned is the lease's **token** (fencing, see
  `hmt.core.partitions.admits`): it stays the same across renewals, and a later
  holder's token is greater because JetStream's sequence only grows.

A lease is valid locally until `renewed_at + ttl_s * SAFE_FRACTION`, where
`renewed_at` is taken *before* the renewal is sent. The server cannot expire the
key before `renewed_at + ttl_s` (it stores the write after we sent it), so a node cut
off from NATS stops holding (and claiming) before anybody else can take over. The
check is made at each use (`token`), not only by the task, so a task stuck on a
silent connection cannot keep a lease alive.

Callbacks (`on_gained(partition, token)`, `on_lost(partition, token)`) are plain
functions called from the keeper's task: they must not block; the engine schedules
its own work (load triggers, subscribe) from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from hmt.core.partitions import check_partitions, wanted_by
from hmt.waits import within

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "hmt_leases"
SAFE_FRACTION = 0.9  # of the TTL: the local deadline, a margin for clock drift and jitter
MIN_TTL_S = 1.0
NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARTITIONS_RECORD = re.compile(r"\bpartitions=(\d+)\b")

Callback = Callable[[int, int], None]
T = TypeVar("T")


class ClusterConfigError(ValueError):
    """The cluster cannot start as configured (named in the message)."""


@dataclass(slots=True)
class Lease:
    partition: int
    token: int  # the revision that acquired it: the fencing token
    revision: int  # the latest revision written by us (renewals compare against it)
    renewed_at: float  # monotonic time before the last successful write


def _ignore(partition: int, token: int) -> None:
    return None


class LeaseKeeper:
    """Acquires, renews and releases this node's partition leases."""

    def __init__(
        self,
        nc: Client,
        node_id: str,
        *,
        partitions: int,
        ttl_s: float,
        bucket: str = DEFAULT_BUCKET,
        on_gained: Callback = _ignore,
        on_lost: Callback = _ignore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not NODE_ID.match(node_id):
            raise ClusterConfigError(
                f"node id must be 1-64 letters, digits, '-' or '_', got {node_id!r}"
            )
        check_partitions(partitions)
        if ttl_s < MIN_TTL_S:
            raise ClusterConfigError(f"lease TTL must be at least {MIN_TTL_S} s, got {ttl_s}")
        self.nc = nc
        self.node_id = node_id
        self.partitions = partitions
        self.ttl_s = ttl_s
        self.bucket = bucket
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.clock = clock
        self.interval_s = ttl_s / 3
        self.op_timeout_s = ttl_s / 3
        self.leases: dict[int, Lease] = {}
        self.live_nodes: frozenset[str] = frozenset()
        self._absent_since: dict[int, float] = {}
        self._fallback: dict[int, frozenset[str]] = {}  # taken unwanted: the live set then
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False

    # --- what the engine asks -------------------------------------------------

    def token(self, partition: int) -> int | None:
        """The fencing token to claim with in `partition`; None if not validly held now."""
        lease = self.leases.get(partition)
        if lease is None or not self._valid(lease, self.clock()):
            return None
        return lease.token

    def held(self) -> dict[int, int]:
        """Every validly held partition and its token."""
        now = self.clock()
        return {p: lease.token for p, lease in self.leases.items() if self._valid(lease, now)}

    # --- life -----------------------------------------------------------------

    async def start(self) -> None:
        self._kv = await bucket_or_later(
            self.nc, self.bucket, self.ttl_s, partitions=self.partitions, what="partition leases"
        )
        self._task = asyncio.create_task(self._run(), name=f"leases-{self.node_id}")
        self._watchdog = asyncio.create_task(self._watch(), name=f"lease-watch-{self.node_id}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with `release`, give every lease back at once (a clean leave)."""
        self._stopping = True
        for task in (self._task, self._watchdog):
            # Cancelled again until it ends: Python 3.11's `wait_for` can swallow a
            # cancellation that arrives as its operation completes (a round in flight
            # at stop), and the loop would go on.
            while task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=self.op_timeout_s)
            if task is not None and not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()
        for partition in list(self.leases):
            await self._release(partition, deliberate=release)
        if release and self._kv is not None:
            with contextlib.suppress(NatsError, TimeoutError):
                await within(self._kv.delete(f"node.{self.node_id}"), self.op_timeout_s)

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.round()
            except (NatsError, TimeoutError, OSError) as error:
                log.warning("lease round failed: %s", type(error).__name__)
            await asyncio.sleep(max(0.0, self.interval_s - (self.clock() - started)))

    async def _watch(self) -> None:
        # Expiry must not wait for a round stuck on a silent connection.
        while True:
            await asyncio.sleep(self.ttl_s / 20)
            self._drop_expired()

    # --- one round --------------------------------------------------------------

    async def round(self) -> None:
        """Renew held leases, refresh presence, take wanted free partitions, hand off others."""
        kv = self._kv
        if kv is None:  # start-up could not open it
            kv = self._kv = await within(
                open_bucket(self.nc, self.bucket, self.ttl_s, partitions=self.partitions),
                BUCKET_OPEN_S,
            )
        await self._renew_all(kv)
        self._drop_expired()
        await self._op(kv.put(f"node.{self.node_id}", b"1"))
        present = await self._keys(kv)
        self.live_nodes = frozenset(
            k.removeprefix("node.") for k in present if k.startswith("node.")
        ) | {self.node_id}
        wanted = wanted_by(self.node_id, self.partitions, self.live_nodes)
        taken = {int(k.removeprefix("partition.")) for k in present if k.startswith("partition.")}
        now = self.clock()
        for partition in range(self.partitions):
            if partition in taken or partition in self.leases:
                self._absent_since.pop(partition, None)
                continue
            first_seen = self._absent_since.setdefault(partition, now)
            # The preferred owner takes a free partition at once; anyone takes one that
            # stayed free a whole lease (the preferred owner may be dying or see other nodes).
            if partition in wanted:
                await self._acquire(kv, partition)
            elif now - first_seen >= self.ttl_s and await self._acquire(kv, partition):
                self._fallback[partition] = self.live_nodes
        for partition in list(self.leases):
            # Hand a partition to its preferred owner (present by construction: a joiner
            # announces itself first). One taken as a fallback is kept while the live set
            # is the one its preferred owner ignored it in, or it would flap.
            if partition in wanted or self._fallback.get(partition) == self.live_nodes:
                continue
            await self._release(partition, deliberate=True)

    async def _renew_all(self, kv: KeyValue) -> None:
        await asyncio.gather(*(self._renew(kv, p) for p in list(self.leases)))

    async def _renew(self, kv: KeyValue, partition: int) -> None:
        lease = self.leases.get(partition)
        if lease is None:
            return
        sent_at = self.clock()
        try:
            revision = await self._op(
                kv.update(f"partition.{partition}", self.node_id.encode(), last=lease.revision)
            )
        except KeyWrongLastSequenceError:
            # Expired and re-created by another node, or written by one: it is theirs.
            self._lose(partition)
            return
        except (NatsError, TimeoutError, OSError):
            return  # kept until its local deadline; the watchdog drops it then
        if self.leases.get(partition) is lease:
            lease.revision = revision
            lease.renewed_at = sent_at

    async def _acquire(self, kv: KeyValue, partition: int) -> bool:
        sent_at = self.clock()
        try:
            revision = await self._op(kv.create(f"partition.{partition}", self.node_id.encode()))
        except KeyWrongLastSequenceError:
            return False  # someone else was quicker
        except (NatsError, TimeoutError, OSError):
            return False
        self._absent_since.pop(partition, None)
        self.leases[partition] = Lease(partition, revision, revision, sent_at)
        log.info("partition %d gained (token %d)", partition, revision)
        self._tell(self.on_gained, partition, revision)
        return True

    async def _release(self, partition: int, *, deliberate: bool) -> None:
        lease = self.leases.get(partition)
        if lease is None:
            return
        self._lose(partition)
        if deliberate and self._kv is not None:
            # Conditional: if it is no longer ours, it is not ours to delete.
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await self._op(self._kv.delete(f"partition.{partition}", last=lease.revision))

    def _drop_expired(self) -> None:
        now = self.clock()
        for partition, lease in list(self.leases.items()):
            if not self._valid(lease, now):
                self._lose(partition)

    def _lose(self, partition: int) -> None:
        self._fallback.pop(partition, None)
        lease = self.leases.pop(partition, None)
        if lease is not None:
            log.info("partition %d lost (token %d)", partition, lease.token)
            self._tell(self.on_lost, partition, lease.token)

    def _tell(self, callback: Callback, partition: int, token: int) -> None:
        # A failing callback is the engine's bug; the leases must still be kept.
        try:
            callback(partition, token)
        except Exception:
            log.exception("lease callback failed for partition %d", partition)

    def _valid(self, lease: Lease, now: float) -> bool:
        return now < lease.renewed_at + self.ttl_s * SAFE_FRACTION and not self._stopping

    async def _keys(self, kv: KeyValue) -> list[str]:
        try:
            keys: list[str] = await self._op(kv.keys())
        except NoKeysError:
            return []
        return keys

    async def _op(self, op: Awaitable[T]) -> T:
        # Every call is bounded: a silent connection must not hold a round past a renewal.
        return await within(op, self.op_timeout_s)


# How long a round may wait for the lease bucket that start-up could not open.
BUCKET_OPEN_S = 5.0


async def bucket_or_later(
    nc: Client, bucket: str, ttl_s: float, *, partitions: int | None = None, what: str
) -> KeyValue | None:
    """The lease bucket now, or None when NATS does not answer in time (a loaded
    machine, a link cut at that moment): the caller's rounds open it later
    (`open_bucket` under `BUCKET_OPEN_S`), rather than the node dying at start. A bucket
    that exists with another configuration still raises `ClusterConfigError`."""
    try:
        return await open_bucket(nc, bucket, ttl_s, partitions=partitions)
    except (NatsError, TimeoutError, OSError) as error:
        log.warning(
            "%s: lease bucket not opened yet (%s): tried again each round",
            what,
            type(error).__name__,
        )
        return None


async def open_bucket(
    nc: Client, bucket: str, ttl_s: float, *, partitions: int | None = None
) -> KeyValue:
    """The lease bucket, created with `ttl_s` (and `partitions` in its description) if
    absent; refused if it has another TTL or records another partition count.

    Both are properties of the cluster, not of a node: the TTL is the bucket's `max_age`,
    the partition count its description (`partitions=<P>`), written when the bucket is
    made. A key would not do: every key expires after one TTL. A bucket that records no
    count (made by a tool, or before the check) gets this node's. Without `partitions`
    (tools that only read or make the bucket) the count is neither checked nor written.
    """
    js = nc.jetstream()
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=bucket, ttl=ttl_s, history=1, description=_description(partitions)
        )
        try:
            return await js.create_key_value(config)
        except BadRequestError:
            # Another node made it in between (with another configuration if we are
            # refused here): check it like any existing bucket.
            kv = await js.key_value(bucket)
    status = await kv.status()
    existing = status.ttl
    if existing is None or abs(existing - ttl_s) > 1e-3:
        raise ClusterConfigError(
            f"lease bucket {bucket!r} has TTL {existing} s but this node is configured with "
            f"{ttl_s} s (HMT_CLUSTER_LEASE_TTL_S must be the same on every node)"
        )
    if partitions is None:
        return kv
    recorded = recorded_partitions(status.stream_info.config.description)
    if recorded is None:
        stream = status.stream_info.config
        stream.description = _description(partitions)
        await js.update_stream(stream)
    elif recorded != partitions:
        raise ClusterConfigError(
            f"lease bucket {bucket!r} records {recorded} partitions but this node is "
            f"configured with {partitions} (HMT_CLUSTER_PARTITIONS must be the same on every "
            "node; changing it is a stop-the-cluster migration, docs/cluster.md)"
        )
    return kv


def recorded_partitions(description: str | None) -> int | None:
    """The partition count a lease bucket's description records, None if none."""
    found = PARTITIONS_RECORD.search(description or "")
    return int(found.group(1)) if found else None


def _description(partitions: int | None) -> str | None:
    if partitions is None:
        return None
    return f"hmt partition leases; partitions={partitions}"


async def read_leases(
    nc: Client, bucket: str = DEFAULT_BUCKET
) -> tuple[list[str], dict[int, tuple[str, int]]]:
    """The live nodes and each held partition's (holder, revision), read from the bucket."""
    kv = await nc.jetstream().key_value(bucket)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return [], {}
    nodes = sorted(k.removeprefix("node.") for k in keys if k.startswith("node."))
    holders: dict[int, tuple[str, int]] = {}
    for key in keys:
        if not key.startswith("partition."):
            continue
        try:
            entry = await kv.get(key)
        except NotFoundError:
            continue  # expired or released (a delete marker) since the listing
        holders[int(key.removeprefix("partition."))] = (
            (entry.value or b"").decode(),
            entry.revision or 0,
        )
    return nodes, dict(sorted(holders.items()))
