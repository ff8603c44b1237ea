"""From a fired leg to exactly one broker order, whatever the broker does.

The protocol (DESIGN section 3): claim durably first, then send the order
with its deterministic tag (the broker adapter's rule, stored by the claim).
A failure that leaves the order's fate unknown is resolved by looking the tag
up in the broker's book before anything is sent again, so a retry can never
make a second order. Orders wait for the throttle's slot; none is dropped for
the rate limit.

A claim belongs to this engine for a lease, renewed while its order is being
settled; a request is sent only while the lease outlasts it, so another
engine that takes an expired claim over never races a request of ours
(docs/engine.md, "Two engines on one database").

A basket (a leg of several orders) is claimed once, then its orders are
settled one after another in listed order, each by the same rules and with
its own tag; each outcome is written on the order's own row, and the
trigger's outcome once all are settled (`ClaimStore.finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.errors import ClaimLost
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, OrderIntent
from hmt.core.rules import order_for, orders_for
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import Leg, TriggerId
from hmt.engine.ports import ClaimStore, OrderPort
from hmt.engine.stats import EngineStats
from hmt.failpoints import failpoint
from hmt.waits import woken

log = structlog.get_logger("hmt.executor")

# Why an order of a claim too old to resend, and not at the broker, failed.
GIVEN_UP = (
    "the engine restarted before the order was confirmed, the broker has "
    "no order with its tag, and the price may have moved since: not sent again"
)


class Outcome(StrEnum):
    PLACED = "placed"  # the broker accepted it (found by tag or answered with an id)
    FAILED = "failed"  # a final refusal, or retries spent: the reason is on the record
    NOT_CLAIMED = "not_claimed"  # an edit, a cancel or another engine won the claim
    RELEASED = "released"  # the session is invalid: the trigger is armed again
    # The broker's book could not be read: the trigger stays `triggered` until
    # reconciliation can tell whether the order exists.
    UNRESOLVED = "unresolved"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_retries` more attempts after the first, `backoff` doubling each time."""

    max_retries: int = 2
    backoff: float = 1.0
    cap: float = 30.0
    # How long to keep asking the broker about an order whose fate is unknown.
    lookups: int = 5
    # How long an order may wait out the broker's 429s before they count as retries.
    rate_limited_for: float = 120.0

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds before attempt `attempt + 1`; `jitter` in [0, 1) spreads retries."""
        return min(self.cap, self.backoff * 2.0 ** (attempt - 1)) * (0.5 + jitter)


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How long a claim is this engine's without renewal, and what a request may take.

    A request is sent only while the lease has at least `request_timeout` +
    `margin` left, so it has ended (answered or timed out) before the lease
    could expire; renewals every `length / 3` keep that true while all is well.
    """

    length: float = 30.0
    request_timeout: float = 7.0
    margin: float = 1.0

    @property
    def renew_every(self) -> float:
        return self.length / 3


class _Lease:
    """One claim's lease as this process knows it: until when it is surely ours."""

    __slots__ = ("lost", "until")

    def __init__(self, until: float) -> None:
        self.until = until  # loop time; measured from before the write that set it
        self.lost = False


class AuthExpired(Exception):
    """The broker refused the session: every order needs a new access token."""


class _Unreadable(Exception):
    """The broker's order book could not be read, so an order's fate is unknown."""


class _Refused(Exception):
    """A basket's order was answered TokenException: no order was created by it; whether
    the claim is given back depends on the basket's other orders (`_settle_basket`)."""

    def __init__(self, message: str, attempt: int) -> None:
        super().__init__(message)
        self.message = message
        self.attempt = attempt


def _where(intent: OrderIntent) -> dict[str, Any]:
    """The store's keywords for `intent`: its position and tag if it is a basket's
    order; none for a leg of one order, whose writes stay exactly v1's."""
    if intent.basket == 1:
        return {}
    return {"position": intent.position, "tag": intent.tag}


# Told of each order's final outcome once it is recorded: (the order, PLACED or
# FAILED, the broker's order id, the reason it failed). Must not block.
OnOutcome = Callable[[OrderIntent, Outcome, str | None, str | None], None]


class Executor:
    """Places the orders of one broker account."""

    def __init__(
        self,
        broker: OrderPort,
        store: ClaimStore,
        *,
        throttle: Throttle,
        policy: RetryPolicy,
        lease: LeasePolicy | None = None,
        rng: random.Random | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        """`stats`: where claim durations, retries and the queue are counted (the engine's)."""
        self.stats = stats or EngineStats()
        self.stats.headroom_of = lambda: throttle.headroom(time.monotonic())
        self._broker = broker
        self._store = store
        self._throttle = throttle
        self._policy = policy
        self._lease = lease or LeasePolicy()
        self._rng = rng or random.Random()
        self._slot = asyncio.Lock()  # FIFO: orders leave in the order they fired
        self._answered = asyncio.Event()  # an order's answer freed a throttle slot
        self.on_outcome: OnOutcome | None = None  # the engine's log line and notice

    async def _placed(self, intent: OrderIntent, order_id: str, attempt: int) -> None:
        await self._store.placed(intent.trigger_id, order_id, attempt, **_where(intent))
        self._report(intent, Outcome.PLACED, order_id, None)

    async def _failed(self, intent: OrderIntent, reason: str, attempt: int) -> None:
        await self._store.failed(intent.trigger_id, reason, attempt, **_where(intent))
        self._report(intent, Outcome.FAILED, None, reason)

    def _report(
        self, intent: OrderIntent, outcome: Outcome, order_id: str | None, reason: str | None
    ) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(intent, outcome, order_id, reason)
            except Exception:  # a report must never undo a recorded outcome
                log.exception("outcome_report_failed", trigger_id=intent.trigger_id)

    def headroom(self) -> tuple[tuple[Limit, int], ...]:
        """Per broker rate window, the orders this account's throttle would still take now."""
        return self._throttle.headroom(time.monotonic())

    def tag(self, trigger_id: TriggerId, leg: Leg, position: int = 0) -> str:
        """The broker's tag for the order at `position` of this leg (reconciliation
        computes active rows', adoption a basket's never-sent orders')."""
        return self._broker.tag(trigger_id, leg, position)

    async def orders(self) -> list[OrderReport]:
        """The broker's order book of the day, read once; a classified `BrokerError` if not."""
        return await self._broker.orders()

    async def execute(self, fired: Fired, *, on_send: Callable[[], None] | None = None) -> Outcome:
        """Claim `fired` and see its order placed exactly once, or say why not.

        `on_send` is called once, just before the first order request is written.
        When the throttle has a slot free at once, it is taken before the claim
        (and given back if the claim is lost): the claim's transaction then
        records the first `order_sent` too, and the request leaves straight
        after the commit.
        """
        trigger, leg = fired.trigger, fired.leg
        tag = self._broker.tag(trigger.id, leg)
        if trigger.leg_specs and len(trigger.orders(leg)) > 1:
            return await self._execute_basket(fired, tag, on_send)
        sending = self._slot_now()
        started = asyncio.get_running_loop().time()
        try:
            claimed = await self._store.claim(fired, tag, sending=sending)
        except BaseException:
            if sending:
                self._give_back_slot()
            raise
        self.stats.record_claim(asyncio.get_running_loop().time() - started)
        if not claimed:
            if sending:
                self._give_back_slot()
            return Outcome.NOT_CLAIMED
        failpoint("after_claim")
        return await self.settle(
            order_for(trigger, leg, tag),
            on_send=on_send,
            slot_taken=sending,
            leased_at=started,
        )

    async def _execute_basket(
        self, fired: Fired, first: str, on_send: Callable[[], None] | None
    ) -> Outcome:
        """One claim for the whole basket (storing its first order's tag), then each order.

        The claim takes no throttle slot: each order waits for its own and has
        its own `order_sent` (its row in the store) before it leaves, so the
        claim's transaction is the same as any trigger's.
        """
        trigger, leg = fired.trigger, fired.leg
        tags = [first] + [
            self._broker.tag(trigger.id, leg, k) for k in range(1, len(trigger.orders(leg)))
        ]
        started = asyncio.get_running_loop().time()
        claimed = await self._store.claim(fired, first, sending=False)
        self.stats.record_claim(asyncio.get_running_loop().time() - started)
        if not claimed:
            return Outcome.NOT_CLAIMED
        failpoint("after_claim")
        return await self.settle_basket(
            orders_for(trigger, leg, tags), on_send=on_send, leased_at=started
        )

    async def settle_basket(
        self,
        intents: Sequence[OrderIntent],
        *,
        ambiguous: bool = False,
        resend: bool = True,
        on_send: Callable[[], None] | None = None,
        leased_at: float | None = None,
    ) -> Outcome:
        """Settle a claimed basket's unsettled `intents` in order, then finish the trigger.

        Each order goes through `settle`'s rules under one lease; a final
        failure of one does not stop the next (Zerodha's baskets behave so).
        `ambiguous` (recovery): each is looked up by tag before anything is
        sent; `resend` False: an order not found is failed, never sent (its
        claim is too old). An expired session stops the basket: the claim is
        given back only if no order of it is, or may be, at the broker, else
        the trigger stays `triggered` for recovery (`AuthExpired` either way).

        PLACED or FAILED as the trigger finished (FAILED if any order failed),
        UNRESOLVED while an order's fate is unknown (the trigger stays
        `triggered` for the sweep), NOT_CLAIMED if the claim was lost.
        """
        trigger_id = intents[0].trigger_id
        loop = asyncio.get_running_loop()
        start = loop.time() if leased_at is None else leased_at
        async with self._leased(trigger_id, start) as lease:
            try:
                for index, intent in enumerate(intents):
                    if index:
                        failpoint("between_orders")
                    if lease.lost:
                        log.error("claim_lease_lost", trigger_id=trigger_id)
                        return Outcome.UNRESOLVED
                    outcome = await self._basket_order(
                        intent, lease, ambiguous, resend, on_send if index == 0 else None
                    )
                    log.info(
                        "basket_order",
                        trigger_id=trigger_id,
                        position=intent.position,
                        outcome=outcome.value,
                    )
                    if outcome is Outcome.NOT_CLAIMED:
                        return outcome
                status = await self._store.finish(trigger_id)
            except ClaimLost:
                log.warning("claim_lost", trigger_id=trigger_id)
                return Outcome.NOT_CLAIMED
        if status is Status.PLACED:
            return Outcome.PLACED
        if status is Status.FAILED:
            return Outcome.FAILED
        return Outcome.UNRESOLVED

    async def _basket_order(
        self,
        intent: OrderIntent,
        lease: _Lease,
        ambiguous: bool,
        resend: bool,
        on_send: Callable[[], None] | None,
    ) -> Outcome:
        """One order of a basket, under the basket's lease."""
        try:
            if resend:
                return await self._settle(intent, lease, ambiguous, on_send, False)
            return await self._resolve_order(intent)
        except _Refused as refused:
            where = _where(intent)
            trigger_id = intent.trigger_id
            if await self._store.released(trigger_id, refused.message, refused.attempt, **where):
                log.warning("basket_released", trigger_id=trigger_id, position=intent.position)
            else:
                log.warning("basket_held", trigger_id=trigger_id, position=intent.position)
            raise AuthExpired(refused.message) from None

    async def _resolve_order(self, intent: OrderIntent) -> Outcome:
        """A basket's order too old to send again: placed if the broker has it, else failed."""
        try:
            found = await self._lookup(intent)
        except _Unreadable as error:
            log.error("order_unresolved", trigger_id=intent.trigger_id, error=str(error))
            return Outcome.UNRESOLVED
        if found is not None:
            await self._placed(intent, found.order_id, 0)
            return Outcome.PLACED
        await self._store.give_up(intent.trigger_id, GIVEN_UP, **_where(intent))
        self._report(intent, Outcome.FAILED, None, GIVEN_UP)
        return Outcome.FAILED

    async def settle(
        self,
        intent: OrderIntent,
        *,
        ambiguous: bool = False,
        on_send: Callable[[], None] | None = None,
        slot_taken: bool = False,
        leased_at: float | None = None,
    ) -> Outcome:
        """Drive a claimed intent to placed or failed; also used by recovery.

        `ambiguous`: an earlier life of this process, or another engine, may
        have sent the order, so the broker's book is asked before anything is
        sent. `slot_taken`: the claim took the throttle's slot and recorded the
        first `order_sent`. `leased_at`: when the claim's lease was set (loop
        time, taken before its write); recovery's adoption sets it just before.
        """
        trigger_id = intent.trigger_id
        loop = asyncio.get_running_loop()
        start = loop.time() if leased_at is None else leased_at
        async with self._leased(trigger_id, start) as lease:
            try:
                return await self._settle(intent, lease, ambiguous, on_send, slot_taken)
            except ClaimLost:
                # Our lease ran out (renewals failed) and another engine took the
                # claim: it settles the order now, by tag first; we write nothing.
                log.warning("claim_lost", trigger_id=trigger_id)
                return Outcome.NOT_CLAIMED

    async def _settle(
        self,
        intent: OrderIntent,
        lease: _Lease,
        ambiguous: bool,
        on_send: Callable[[], None] | None,
        slot_taken: bool,
    ) -> Outcome:
        trigger_id = intent.trigger_id
        where = _where(intent)  # empty for a leg of one order: the v1 writes exactly
        last: BrokerError | None = None
        attempt = 0
        budget = self._policy.max_retries
        limited_since: float | None = None
        try:
            while attempt <= budget:
                if ambiguous and (found := await self._lookup(intent)) is not None:
                    await self._placed(intent, found.order_id, 0)
                    return Outcome.PLACED
                # With `slot_taken` the claim recorded this first request's order_sent.
                if not slot_taken and not await self._next_request(intent, lease):
                    return Outcome.UNRESOLVED
                slot_taken = False
                attempt += 1
                if on_send is not None and attempt == 1:
                    on_send()
                try:
                    order_id = await self._send(intent)
                except BrokerError as error:
                    last = error
                    log.warning(
                        "order_error", trigger_id=trigger_id, attempt=attempt, error=str(error)
                    )
                    if error.kind is ErrorKind.FINAL:
                        # A refusal that came with a 5xx is the one final answer an
                        # OMS could give after taking the order: check once, never resend.
                        server_side = (error.http_status or 0) >= 500
                        if server_side and (found := await self._lookup(intent)) is not None:
                            await self._placed(intent, found.order_id, attempt)
                            return Outcome.PLACED
                        await self._failed(intent, error.message, attempt)
                        return Outcome.FAILED
                    if error.kind is ErrorKind.AUTH:
                        if where:  # a basket's: its other orders decide (`_basket_order`)
                            raise _Refused(error.message, attempt) from None
                        await self._store.released(trigger_id, error.message, attempt)
                        raise AuthExpired(error.message) from None
                    ambiguous = error.kind is ErrorKind.AMBIGUOUS
                    limited_since, queued = self._rate_limited(error, limited_since)
                    budget += queued
                    await self._store.retry(trigger_id, attempt, str(error), **where)
                    self.stats.retries += 1
                    await asyncio.sleep(self._retry_delay(attempt, error))
                    continue
                failpoint("after_response")
                await self._placed(intent, order_id, attempt)
                return Outcome.PLACED
            assert last is not None
            if ambiguous and (found := await self._lookup(intent)) is not None:
                # The last attempt reached the broker after all.
                await self._placed(intent, found.order_id, 0)
                return Outcome.PLACED
        except _Unreadable as error:
            log.error("order_unresolved", trigger_id=trigger_id, error=str(error))
            return Outcome.UNRESOLVED
        reason = f"gave up after {attempt} attempts: {last.message}"
        await self._failed(intent, reason, 0)
        return Outcome.FAILED

    async def _next_request(self, intent: OrderIntent, lease: _Lease) -> bool:
        """Take a throttle slot and record the request's `order_sent`; False if it may not go.

        A request may go only while the lease outlasts it: otherwise another
        engine could take the claim over while our request is still on its way.
        The claim then stays `triggered` until its lease expires and a sweep
        (any engine's, this one's included) settles it by tag.
        """
        trigger_id = intent.trigger_id
        await self._wait_for_slot()
        loop = asyncio.get_running_loop()
        if (
            lease.lost
            or lease.until - loop.time() < self._lease.request_timeout + self._lease.margin
        ):
            self._give_back_slot()
            log.error("claim_lease_short", trigger_id=trigger_id, lost=lease.lost)
            return False
        try:
            await self._store.order_sent(trigger_id, **_where(intent))  # also renews the lease
        except BaseException:
            self._give_back_slot()
            raise
        return True

    @contextlib.asynccontextmanager
    async def _leased(self, trigger_id: TriggerId, start: float) -> AsyncIterator[_Lease]:
        """Renew the claim's lease in the background for as long as it is being settled."""
        lease = _Lease(start + self._lease.length)
        loop = asyncio.get_running_loop()
        if loop.time() - start > self._lease.renew_every:
            # Adopted a while ago (recovery settles claims one by one): renew first.
            await self._renew_once(trigger_id, lease)
        done = asyncio.Event()
        task = loop.create_task(self._renew(trigger_id, lease, done))
        try:
            yield lease
        finally:
            # Stopped between renewals, never cancelled inside a database write.
            done.set()
            await task

    async def _renew(self, trigger_id: TriggerId, lease: _Lease, done: asyncio.Event) -> None:
        while not lease.lost:
            if await woken(done, self._lease.renew_every):
                return
            await self._renew_once(trigger_id, lease)

    async def _renew_once(self, trigger_id: TriggerId, lease: _Lease) -> None:
        began = asyncio.get_running_loop().time()
        try:
            held = await self._store.renew(trigger_id)
        except Exception as error:  # the next round tries again; sends check `until`
            log.warning("claim_renewal_failed", trigger_id=trigger_id, error=str(error))
            return
        if held:
            lease.until = began + self._lease.length
        else:
            lease.lost = True

    async def resolve(
        self, intent: OrderIntent, *, leased_at: float | None = None
    ) -> Outcome | None:
        """Look a claimed intent up without sending anything.

        PLACED if the broker has it (recorded as such), UNRESOLVED if the book
        could not be read, None if the broker has no order with its tag.
        """
        start = asyncio.get_running_loop().time() if leased_at is None else leased_at
        async with self._leased(intent.trigger_id, start):
            try:
                found = await self._lookup(intent)
            except _Unreadable as error:
                log.error("order_unresolved", trigger_id=intent.trigger_id, error=str(error))
                return Outcome.UNRESOLVED
            if found is None:
                return None
            try:
                await self._store.placed(intent.trigger_id, found.order_id, 0)
                self._report(intent, Outcome.PLACED, found.order_id, None)
            except ClaimLost:
                log.warning("claim_lost", trigger_id=intent.trigger_id)
                return Outcome.NOT_CLAIMED
            return Outcome.PLACED

    async def _lookup(self, intent: OrderIntent) -> OrderReport | None:
        """The order carrying our tag, asking again while the answer itself fails."""
        for attempt in range(1, self._policy.lookups + 1):
            try:
                found = await self._broker.find(intent.tag)
            except BrokerError as error:
                if error.kind is ErrorKind.AUTH:
                    raise AuthExpired(error.message) from None
                log.warning("lookup_error", tag=intent.tag, attempt=attempt, error=str(error))
                await asyncio.sleep(self._retry_delay(attempt, error))
                continue
            return found[0] if found else None
        raise _Unreadable(f"could not read the order book after {self._policy.lookups} tries")

    def _slot_now(self) -> bool:
        """Take the throttle's slot if it is free at once and nobody queues for it."""
        if self._slot.locked():  # orders leave in the order they fired
            return False
        now = asyncio.get_running_loop().time()
        if self._throttle.wait(now) > 0:
            return False
        self._throttle.begin(now)
        return True

    def _give_back_slot(self) -> None:
        """A taken slot whose request will not be sent: it counts nowhere."""
        self._throttle.cancel()
        self._answered.set()

    async def _wait_for_slot(self) -> None:
        self.stats.orders_queued += 1
        try:
            await self._queue_for_slot()
        finally:
            self.stats.orders_queued -= 1

    async def _queue_for_slot(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._slot:
            # A loop, not one sleep: a timer may wake a hair before its deadline.
            while (delay := self._throttle.wait(loop.time())) > 0:
                if delay == math.inf:  # orders in flight fill a window: wait for an answer
                    self._answered.clear()
                    await self._answered.wait()
                else:
                    await asyncio.sleep(delay)
            self._throttle.begin(loop.time())

    async def _send(self, intent: OrderIntent) -> str:
        """Place the order; the throttle learns when the answer (or failure) came.

        The broker counted the order before it answered, so the answer's time
        bounds its place in the broker's rate windows however slow the request was.
        """
        loop = asyncio.get_running_loop()
        try:
            return await self._broker.place(intent)
        finally:
            self._throttle.end(loop.time())
            self._answered.set()

    def _rate_limited(self, error: BrokerError, since: float | None) -> tuple[float | None, int]:
        """(rate limited since, 1 if this attempt spends no retry).

        A 429 means nothing was accepted. Queue, don't spend a retry, for as
        long as the policy allows (another engine on the same account, or a
        burst from another app, can hold the limit).
        """
        if error.http_status != 429:
            return since, 0
        now = asyncio.get_running_loop().time()
        since = now if since is None else since
        return since, int(now - since < self._policy.rate_limited_for)

    def _retry_delay(self, attempt: int, error: BrokerError) -> float:
        delay = self._policy.delay(attempt, self._rng.random())
        return max(delay, error.retry_after or 0.0)
