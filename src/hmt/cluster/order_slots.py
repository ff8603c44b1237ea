"""One account's order rate limit across the cluster: slots granted by the account's holder.

The node holding the account's lease (`hmt.cluster.account_lease`) keeps the
account's one `Throttle`. Before any node sends an order it asks that node for a
slot (core-NATS request `hmt.orders.<account>.slot`), sends the order to the broker
itself, and says when the answer came (`hmt.orders.<account>.done`). The order, its
tag and its claim never leave the node that claimed it: a lost message can cost a
slot, never an order (docs/cluster.md, "Orders").

- A slot counts in every window from its grant until its `done` arrives (a time no
  earlier than the broker's answer: the throttle's in-flight rule), or, if that
  message is lost (the sender died), until `grant + STALE_S + request timeout`: the
  order left within `STALE_S` of the grant (`SlotClient` discards a slot that took
  longer to reach it) and its request ended within the timeout.
- A new holder has no history. A holder that gives the lease back deliberately (a
  hand-off, SIGTERM) first stops granting and keeps the key until its last grant's
  order has left the shortest window (`quiet_s`). A key that expired was last renewed
  at least a TTL before a new holder could create it; a holder that died (SIGKILL) had
  renewed every TTL/3 until then, so its last grant is at least 2/3 x TTL old when the
  key is taken: the new holder counts the shortest window as full at `gain - 2/3 x TTL +
  STALE_S` (no wait at TTL >= 2.4 s, 0.55 s at 1.5 s). Not covered: a holder cut from
  NATS whose renewals failed but which still grants its own node's orders until its
  lease's local deadline (0.9 x TTL): its last second may overlap the new holder's
  first, and the broker's 429 for the excess is waited out by the executor. The
  longer windows are not carried over, as after a single process's restart.
- No slot within the client's wait (no holder during a fail-over, a saturated
  account): `place` raises a 429-like `BrokerError` (nothing was sent), which the
  executor queues and sends again, as for the broker's own 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

from hmt.cluster.account_lease import AccountLease
from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import Leg
from hmt.waits import woken

log = logging.getLogger(__name__)

# A slot that took longer than this from its grant to its asker is not used (given back).
STALE_S = 0.5
# Between tries while nobody holds the account (a fail-over): a NATS round trip is ~0.3 ms.
RETRY_S = 0.05


def subjects(account: str) -> tuple[str, str]:
    """The slot request subject and the done subject of `account`."""
    return f"hmt.orders.{account}.slot", f"hmt.orders.{account}.done"


class SlotOwner:
    """The account's throttle, on the node holding its lease: grants and their ends."""

    def __init__(
        self,
        node_id: str,
        limits: Iterable[Limit],
        *,
        margin: float,
        request_timeout: float,
        valid: Callable[[], int | None],
        ttl_s: float,
    ) -> None:
        """`valid`: the account lease's token while it is validly held (checked per grant)."""
        self.node_id = node_id
        self.limits = tuple(limits)
        self.margin = margin
        self.shortest = min(self.limits, key=lambda limit: limit.seconds)
        # How long before its gain a new holder's shortest window may still hold a dead
        # holder's orders (see the module's text).
        self.dead_since = ttl_s * 2 / 3 - STALE_S
        self._last_grant = -math.inf
        # An unanswered slot counts until its order's request must have ended.
        self.expire_after = STALE_S + request_timeout + margin
        self._valid = valid
        self._token: int | None = None
        self._throttle: Throttle | None = None
        self._open: dict[str, float] = {}  # grant id -> when it stops counting unless done
        self._count = 0
        self._queue = asyncio.Lock()  # FIFO: slots go in the order they were asked
        self._freed = asyncio.Event()
        self.held = asyncio.Event()  # set while this node holds the account (from `gained`)
        self.granted = 0

    def gained(self, token: int) -> None:
        """The lease was taken: a fresh throttle, its shortest window full until the last
        holder's orders may have left it."""
        now = asyncio.get_running_loop().time()
        throttle = Throttle(self.limits, margin=self.margin)
        if self.dead_since < self.shortest.seconds + self.margin:  # else it left already
            for _ in range(self.shortest.count):
                throttle.take(now - self.dead_since)
        self._token, self._throttle, self._open, self._count = token, throttle, {}, 0
        self._freed.set()
        self.held.set()

    def lost(self) -> None:
        self._token, self._throttle, self._open = None, None, {}
        self._freed.set()  # waiters see it and give up
        self.held.clear()

    def quiet_s(self) -> float:
        """How long to hold the lease without granting before giving it back: until the
        last grant's order (sent within STALE_S) has left the shortest window."""
        loop = asyncio.get_running_loop()
        left = self._last_grant + STALE_S + self.shortest.seconds + self.margin - loop.time()
        return max(0.0, left)

    def holding(self) -> bool:
        return self._token is not None and self._valid() == self._token

    async def grant(self, deadline: float) -> str | None:
        """A slot's id once the throttle allows one; None if not held or not by `deadline`."""
        loop = asyncio.get_running_loop()
        async with self._queue:
            while True:
                throttle = self._throttle
                now = loop.time()
                if throttle is None or not self.holding() or now >= deadline:
                    return None  # not ours, or too late for the asker: it asks again
                self._expire(throttle, now)
                delay = throttle.wait(now)
                if delay == 0:
                    break
                if delay != math.inf:
                    # A window frees at a known time (an answer cannot bring it forward).
                    if now + delay > deadline:
                        return None
                    await asyncio.sleep(delay)
                    continue
                # Slots in flight fill a window: wait for a done, or the first expiry.
                until_expiry = min(self._open.values(), default=deadline) - now
                self._freed.clear()
                await woken(self._freed, min(until_expiry, deadline - now))
            throttle.begin(now)
            self._count += 1
            grant = f"{self.node_id}.{self._token}.{self._count}"
            self._open[grant] = now + self.expire_after
            self._last_grant = now
            self.granted += 1
            return grant

    def done(self, grant: str) -> None:
        """The order of `grant` was answered (or never sent): it counts from now as ended."""
        throttle = self._throttle
        if throttle is None or self._open.pop(grant, None) is None:
            return  # another holder's, expired, or already done
        throttle.end(asyncio.get_running_loop().time())
        self._freed.set()

    def _expire(self, throttle: Throttle, now: float) -> None:
        for grant, until in list(self._open.items()):
            if until <= now:
                del self._open[grant]
                throttle.end(now)
                log.warning("order slot %s never reported done: counted until now", grant)


class SlotService:
    """The account holder's side on NATS: answers slot requests, takes done messages."""

    def __init__(self, nc: Client, owner: SlotOwner, account: str) -> None:
        self.nc = nc
        self.owner = owner
        self.slot_subject, self.done_subject = subjects(account)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Every node listens; only the valid holder answers a slot request with a slot.
        self._subs = [
            await self.nc.subscribe(self.slot_subject, cb=self._on_slot),
            await self.nc.subscribe(self.done_subject, cb=self._on_done),
        ]

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(NatsError, OSError):
                await sub.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_slot(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        loop = asyncio.get_running_loop()
        received = loop.time()
        try:
            budget = float(json.loads(msg.data)["budget"])
        except (ValueError, KeyError, TypeError):
            return
        if not self.owner.holding():
            # Not ours: the holder answers. During a fail-over nobody does, so the request
            # is kept for its budget and answered by whoever takes the account meanwhile.
            await woken(self.owner.held, budget)
            if not self.owner.holding():
                return  # never ours: a "busy" here would race the holder's slot
        grant = await self.owner.grant(received + budget)
        reply: dict[str, object]
        if grant is None:
            reply = {"busy": True}
        else:
            reply = {"grant": grant, "held": loop.time() - received}
        try:
            await msg.respond(json.dumps(reply).encode())
        except (NatsError, OSError):
            if grant is not None:
                self.owner.done(grant)  # never reached its asker

    async def _on_done(self, msg: Msg) -> None:
        self.owner.done(msg.data.decode(errors="replace"))


@dataclass(frozen=True, slots=True)
class Slot:
    grant: str
    local: bool


class SlotClient:
    """Asks the account's holder for a slot (this node's own `SlotOwner` when it holds it)."""

    def __init__(
        self, nc: Client, owner: SlotOwner, account: str, *, wait_s: float, try_s: float
    ) -> None:
        """`wait_s`: how long one order may wait for a slot; `try_s`: one request's wait
        (a holder that died mid-request is given up after it)."""
        self.nc = nc
        self.owner = owner
        self.slot_subject, self.done_subject = subjects(account)
        self.wait_s = wait_s
        self.try_s = try_s

    async def acquire(self) -> Slot | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while (remaining := deadline - loop.time()) > 0:
            if self.owner.holding():
                grant = await self.owner.grant(deadline)
                if grant is not None:
                    return Slot(grant, local=True)
                continue  # lost the lease meanwhile, or the deadline passed
            slot = await self._ask(min(remaining, self.try_s))
            if slot is not None:
                return slot
        return None

    async def _ask(self, within: float) -> Slot | None:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        # The holder answers in time for the answer to reach us; a node taking the
        # account meanwhile answers it then (this node included).
        budget = within - STALE_S / 2
        try:
            msg = await self.nc.request(
                self.slot_subject, json.dumps({"budget": budget}).encode(), timeout=within
            )
        except (NoRespondersError, NatsError, TimeoutError, OSError):
            # Nobody holds the account (or its holder died): ask again after a pause.
            await asyncio.sleep(min(RETRY_S, max(0.0, asked + within - loop.time())))
            return None
        try:
            reply = json.loads(msg.data)
        except ValueError:
            return None
        grant = reply.get("grant")
        if not isinstance(grant, str):
            await asyncio.sleep(min(RETRY_S, max(0.0, asked + within - loop.time())))
            return None
        travelled = loop.time() - asked - float(reply.get("held", 0.0))
        if travelled > STALE_S:
            # Its holder stops counting it STALE_S + the request timeout after the grant.
            await self._publish_done(grant)
            log.warning("order slot %s came %.3f s late: given back", grant, travelled)
            return None
        return Slot(grant, local=False)

    async def release(self, slot: Slot) -> None:
        """The order's answer (or failure) came: the slot ends at its holder."""
        if slot.local:
            self.owner.done(slot.grant)
        else:
            await self._publish_done(slot.grant)

    async def _publish_done(self, grant: str) -> None:
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await self.nc.publish(self.done_subject, grant.encode())


class _Orders(Protocol):
    """`hmt.engine.ports.OrderPort`, as far as this wrapper needs it."""

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str: ...

    async def place(self, intent: OrderIntent) -> str: ...

    async def find(self, tag: str) -> list[OrderReport]: ...

    async def orders(self) -> list[OrderReport]: ...


class SlottedOrders:
    """The broker's order port, each `place` holding a slot from the account's holder."""

    def __init__(self, broker: _Orders, slots: SlotClient | None = None) -> None:
        """`slots` may be set later (the composition makes it once NATS is connected),
        but before the first `place`."""
        self._broker = broker
        self.slots = slots

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return self._broker.tag(trigger_id, leg, position)

    async def find(self, tag: str) -> list[OrderReport]:
        return await self._broker.find(tag)

    async def orders(self) -> list[OrderReport]:
        return await self._broker.orders()

    async def place(self, intent: OrderIntent) -> str:
        slots = self.slots
        assert slots is not None, "a cluster node's orders need the account's slots"
        slot = await slots.acquire()
        if slot is None:
            # Nothing was sent: the executor queues it like the broker's own 429.
            raise BrokerError(
                ErrorKind.RETRY,
                "no order slot from the account's holder in time (cluster rate limit)",
                http_status=429,
            )
        try:
            return await self._broker.place(intent)
        finally:
            await slots.release(slot)


class AccountSlots:
    """One node's part in an account's cluster-wide limit: its lease on the account, the
    slot service answering for it while held, and the client every `place` asks."""

    def __init__(
        self,
        nc: Client,
        node_id: str,
        account: str,
        *,
        limits: Iterable[Limit],
        margin: float,
        request_timeout: float,
        ttl_s: float,
        wait_s: float,
        live_nodes: Callable[[], Collection[str]],
    ) -> None:
        self.account = account
        self.lease = AccountLease(nc, node_id, account, ttl_s=ttl_s, live_nodes=live_nodes)
        self.owner = SlotOwner(
            node_id,
            limits,
            margin=margin,
            request_timeout=request_timeout,
            valid=self.lease.token,
            ttl_s=ttl_s,
        )
        self.lease.on_gained = self.owner.gained
        self.lease.on_lost = self.owner.lost
        self.lease.quiet = self.owner.quiet_s
        self.service = SlotService(nc, self.owner, account)
        # One request waits at most a round: a holder that died is asked again soon.
        try_s = max(0.5, ttl_s / 3)
        self.client = SlotClient(nc, self.owner, account, wait_s=wait_s, try_s=try_s)

    async def start(self) -> None:
        await self.service.start()
        await self.lease.start()

    async def stop(self) -> None:
        """Give the account back first (another node takes it within a round)."""
        await self.lease.stop(release=True)
        await self.service.stop()
