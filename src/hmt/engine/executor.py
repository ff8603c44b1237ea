"""From a fired leg to exactly one broker order, whatever the broker does.

The protocol (DESIGN section 3): claim durably first, then send the order
with its deterministic tag. A failure that leaves the order's fate unknown is
resolved by looking the tag up in the broker's book before anything is sent
again, so a retry can never make a second order. Orders wait for the
throttle's slot; none is dropped for the rate limit.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import Fired, OrderIntent
from hmt.core.rules import order_for
from hmt.core.throttle import Throttle
from hmt.engine.ports import ClaimStore, OrderPort
from hmt.failpoints import failpoint

log = structlog.get_logger("hmt.executor")


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


class AuthExpired(Exception):
    """The broker refused the session: every order needs a new access token."""


class _Unreadable(Exception):
    """The broker's order book could not be read, so an order's fate is unknown."""


class Executor:
    """Places the orders of one broker account."""

    def __init__(
        self,
        broker: OrderPort,
        store: ClaimStore,
        *,
        throttle: Throttle,
        policy: RetryPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._broker = broker
        self._store = store
        self._throttle = throttle
        self._policy = policy
        self._rng = rng or random.Random()
        self._slot = asyncio.Lock()  # FIFO: orders leave in the order they fired
        self._answered = asyncio.Event()  # an order's answer freed a throttle slot

    async def execute(self, fired: Fired, *, on_send: Callable[[], None] | None = None) -> Outcome:
        """Claim `fired` and see its order placed exactly once, or say why not.

        `on_send` is called once, just before the first order request is written.
        """
        if not await self._store.claim(fired):
            return Outcome.NOT_CLAIMED
        failpoint("after_claim")
        return await self.settle(order_for(fired.trigger, fired.leg), on_send=on_send)

    async def settle(
        self,
        intent: OrderIntent,
        *,
        ambiguous: bool = False,
        on_send: Callable[[], None] | None = None,
    ) -> Outcome:
        """Drive a claimed intent to placed or failed; also used by start-up recovery.

        `ambiguous`: an earlier life of this process may have sent the order,
        so the broker's book is asked before anything is sent.
        """
        trigger_id = intent.trigger_id
        last: BrokerError | None = None
        attempt = 0
        budget = self._policy.max_retries
        limited_since: float | None = None
        try:
            while attempt <= budget:
                if ambiguous and (found := await self._lookup(intent)) is not None:
                    await self._store.placed(trigger_id, found.order_id, 0)
                    return Outcome.PLACED
                await self._wait_for_slot()
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
                            await self._store.placed(trigger_id, found.order_id, attempt)
                            return Outcome.PLACED
                        await self._store.failed(trigger_id, error.message, attempt)
                        return Outcome.FAILED
                    if error.kind is ErrorKind.AUTH:
                        await self._store.released(trigger_id, error.message, attempt)
                        raise AuthExpired(error.message) from None
                    ambiguous = error.kind is ErrorKind.AMBIGUOUS
                    if error.http_status == 429:
                        # Rate limited: nothing was accepted. Queue, don't spend a retry,
                        # for as long as the policy allows (another engine on the same
                        # account, or a burst from another app, can hold the limit).
                        now = asyncio.get_running_loop().time()
                        limited_since = now if limited_since is None else limited_since
                        if now - limited_since < self._policy.rate_limited_for:
                            budget += 1
                    await self._store.retry(trigger_id, attempt, str(error))
                    await asyncio.sleep(self._retry_delay(attempt, error))
                    continue
                failpoint("after_response")
                await self._store.placed(trigger_id, order_id, attempt)
                return Outcome.PLACED
            assert last is not None
            if ambiguous and (found := await self._lookup(intent)) is not None:
                # The last attempt reached the broker after all.
                await self._store.placed(trigger_id, found.order_id, 0)
                return Outcome.PLACED
        except _Unreadable as error:
            log.error("order_unresolved", trigger_id=trigger_id, error=str(error))
            return Outcome.UNRESOLVED
        reason = f"gave up after {attempt} attempts: {last.message}"
        await self._store.failed(trigger_id, reason, 0)
        return Outcome.FAILED

    async def resolve(self, intent: OrderIntent) -> Outcome | None:
        """Look a claimed intent up without sending anything.

        PLACED if the broker has it (recorded as such), UNRESOLVED if the book
        could not be read, None if the broker has no order with its tag.
        """
        try:
            found = await self._lookup(intent)
        except _Unreadable as error:
            log.error("order_unresolved", trigger_id=intent.trigger_id, error=str(error))
            return Outcome.UNRESOLVED
        if found is None:
            return None
        await self._store.placed(intent.trigger_id, found.order_id, 0)
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

    async def _wait_for_slot(self) -> None:
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

    def _retry_delay(self, attempt: int, error: BrokerError) -> float:
        delay = self._policy.delay(attempt, self._rng.random())
        return max(delay, error.retry_after or 0.0)
