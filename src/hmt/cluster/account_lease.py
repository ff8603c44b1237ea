"""The lease on one broker account: the node holding it grants the account's order slots.

Kite's order limits are per API key (10/s, 200/min), so across the cluster one node
keeps the account's throttle (docs/cluster.md, "Orders"). That node holds the key
`account.<id>` in the lease bucket, kept like a partition's lease
(`hmt.cluster.leases`): taken with `create` by the account's preferred node
(rendezvous over the live nodes the partition keeper sees), or by any node once the
key stayed absent a whole TTL; renewed every TTL/3 with `update(last=revision)`;
valid locally until `renewed_at + 0.9 x TTL` (checked at each use, `token`), so a
node cut from NATS stops granting before anyone else can take the key; handed to
the preferred node by a conditional `delete` once that node is live, after holding it
(renewed, granting nothing) until its last grant's order has left the shortest window
(`quiet`), so the next holder needs no history.

The account id is derived from the broker and the app's key (`account_id`): today
one process trades one account. Hashed, so the key never appears in NATS subjects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from hashlib import blake2b
from typing import TypeVar

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from hmt.cluster.leases import (
    BUCKET_OPEN_S,
    DEFAULT_BUCKET,
    SAFE_FRACTION,
    Lease,
    bucket_or_later,
    open_bucket,
)
from hmt.waits import within

log = logging.getLogger(__name__)

T = TypeVar("T")


def account_id(broker: str, key: str) -> str:
    """The account's id in lease keys and subjects: `<broker>-<16 hex of BLAKE2b(key)>`."""
    digest = blake2b(key.encode(), digest_size=8).hexdigest()
    return f"{broker.lower()}-{digest}"


def preferred_node(account: str, nodes: Collection[str]) -> str | None:
    """The live node that should hold `account`'s lease (rendezvous; ties to the smaller id)."""
    best: tuple[int, str] | None = None
    for node in nodes:
        text = f"{node}/account.{account}".encode()
        weight = int.from_bytes(blake2b(text, digest_size=8).digest(), "big")
        if best is None or weight > best[0] or (weight == best[0] and node < best[1]):
            best = (weight, node)
    return None if best is None else best[1]


def _ignore_gain(token: int) -> None:
    return None


def _ignore_loss() -> None:
    return None


class AccountLease:
    """Takes, renews and gives back this node's lease on one account."""

    def __init__(
        self,
        nc: Client,
        node_id: str,
        account: str,
        *,
        ttl_s: float,
        live_nodes: Callable[[], Collection[str]],
        bucket: str = DEFAULT_BUCKET,
        on_gained: Callable[[int], None] = _ignore_gain,
        on_lost: Callable[[], None] = _ignore_loss,
        quiet: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nc = nc
        self.node_id = node_id
        self.account = account
        self.key = f"account.{account}"
        self.ttl_s = ttl_s
        self.bucket = bucket
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.quiet = quiet  # how long a deliberate release holds the key first
        self.clock = clock
        self._live = live_nodes
        self._lease: Lease | None = None
        self._absent_since: float | None = None
        self._fallback: frozenset[str] | None = None  # taken unwanted: the live set then
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def token(self) -> int | None:
        """The lease's token while it is validly held now; None otherwise."""
        lease = self._lease
        if lease is None or not self._valid(lease, self.clock()):
            return None
        return lease.token

    async def start(self) -> None:
        self._kv = await bucket_or_later(
            self.nc, self.bucket, self.ttl_s, what=f"account {self.account}'s lease"
        )
        self._tasks = [
            asyncio.create_task(self._run(), name=f"account-lease-{self.account}"),
            asyncio.create_task(self._watch(), name=f"account-watch-{self.account}"),
        ]

    async def stop(self, *, release: bool = True) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._release(deliberate=release)

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.round()
            except (NatsError, TimeoutError, OSError) as error:
                log.warning("account lease round failed: %s", type(error).__name__)
            # A holder renews every TTL/3; the others look more often, so a dead holder's
            # key is taken soon after it expires (one `get` a round: cheap).
            every = self.ttl_s / (3 if self._lease is not None else 10)
            await asyncio.sleep(max(0.0, every - (self.clock() - started)))

    async def _watch(self) -> None:
        while True:  # expiry must not wait for a round stuck on a silent connection
            await asyncio.sleep(self.ttl_s / 20)
            self._drop_expired()

    async def round(self) -> None:
        """Renew the lease if held; take it if preferred (or left free a TTL); hand it off."""
        kv = self._kv
        if kv is None:  # start-up could not open it
            kv = self._kv = await within(
                open_bucket(self.nc, self.bucket, self.ttl_s), BUCKET_OPEN_S
            )
        await self._renew(kv)
        self._drop_expired()
        live = frozenset(self._live())
        if self.node_id not in live:
            return  # the partition keeper has not announced this node yet
        preferred = preferred_node(self.account, live)
        if self._lease is None:
            if preferred == self.node_id:
                await self._acquire(kv)
            elif await self._absent(kv) and await self._acquire(kv):
                self._fallback = live
        elif preferred != self.node_id and self._fallback != live:
            await self._release(deliberate=True)

    async def _absent(self, kv: KeyValue) -> bool:
        """Whether the key has been absent for a whole TTL (the preferred node is not taking it)."""
        try:
            await self._op(kv.get(self.key))
        except NotFoundError:  # absent, expired, or a delete marker
            now = self.clock()
            if self._absent_since is None:
                self._absent_since = now
            return now - self._absent_since >= self.ttl_s
        self._absent_since = None
        return False

    async def _renew(self, kv: KeyValue) -> None:
        lease = self._lease
        if lease is None:
            return
        sent_at = self.clock()
        try:
            revision = await self._op(
                kv.update(self.key, self.node_id.encode(), last=lease.revision)
            )
        except KeyWrongLastSequenceError:
            self._lose()
            return
        except (NatsError, TimeoutError, OSError):
            return  # kept until its local deadline
        if self._lease is lease:
            lease.revision = revision
            lease.renewed_at = sent_at

    async def _acquire(self, kv: KeyValue) -> bool:
        sent_at = self.clock()
        try:
            revision = await self._op(kv.create(self.key, self.node_id.encode()))
        except (KeyWrongLastSequenceError, NatsError, TimeoutError, OSError):
            return False
        self._absent_since = None
        self._lease = Lease(0, revision, revision, sent_at)
        log.info("account %s gained (token %d)", self.account, revision)
        try:
            self.on_gained(revision)
        except Exception:
            log.exception("account gain callback failed")
        return True

    async def _release(self, *, deliberate: bool) -> None:
        lease = self._lease
        if lease is None:
            return
        self._lose()  # stops granting at once
        if deliberate and self._kv is not None:
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await self._hold(self._kv, lease)
                await self._op(self._kv.delete(self.key, last=lease.revision))

    async def _hold(self, kv: KeyValue, lease: Lease) -> None:
        """Keep the key (renewed, not granting) for `quiet()` seconds before giving it back:
        the next holder's first grant then comes after the last of ours left its window."""
        until = self.clock() + self.quiet()
        while (left := until - self.clock()) > 0:
            lease.revision = await self._op(
                kv.update(self.key, self.node_id.encode(), last=lease.revision)
            )
            await asyncio.sleep(min(left, self.ttl_s / 3))

    def _drop_expired(self) -> None:
        lease = self._lease
        if lease is not None and not self._valid(lease, self.clock()):
            self._lose()

    def _lose(self) -> None:
        lease, self._lease, self._fallback = self._lease, None, None
        if lease is None:
            return
        log.info("account %s lost (token %d)", self.account, lease.token)
        try:
            self.on_lost()
        except Exception:
            log.exception("account loss callback failed")

    def _valid(self, lease: Lease, now: float) -> bool:
        return now < lease.renewed_at + self.ttl_s * SAFE_FRACTION and not self._stopping

    async def _op(self, op: Awaitable[T]) -> T:
        return await within(op, self.ttl_s / 3)
