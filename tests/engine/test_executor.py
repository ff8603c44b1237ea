"""The executor's exactly-once protocol, branch by branch, with scripted broker answers.

These pin the decisions; the same protocol runs against the simulator and a real
store in the engine's system tests.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.model import Fired, OrderIntent
from hmt.core.throttle import Limit, Throttle
from hmt.core.types import Leg
from hmt.engine.executor import AuthExpired, Executor, LeasePolicy, Outcome, RetryPolicy
from hmt.waits import within
from tests.support.factories import make_trigger
from tests.support.ports import Broker, Step, fail
from tests.support.ports import ClaimLedger as Store


def executor(broker: Broker, store: Store, **throttle_limits: float) -> Executor:
    limits = [Limit(int(throttle_limits.get("count", 1000)), throttle_limits.get("seconds", 1.0))]
    return Executor(
        broker,
        store,
        throttle=Throttle(limits),
        policy=RetryPolicy(max_retries=2, backoff=0.001, lookups=3),
        rng=random.Random(7),
    )


def fired() -> Fired:
    return Fired(make_trigger(), Leg.FIRST, 160_000)


def orders(broker: Broker) -> int:
    return sum(len(ids) for ids in broker.book.values())


async def test_placed_on_the_first_answer() -> None:
    """Claim, one order, placed with the broker's id and the sent attempt."""
    broker, store = Broker(), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert orders(broker) == 1
    assert store.calls[-1][0] == "placed"
    assert store.calls[-1][1] == (next(iter(broker.book.values()))[0], 1)


async def test_lost_claim_sends_nothing() -> None:
    """If the claim is lost (edit, cancel, another engine), no order leaves."""
    broker, store = Broker(), Store(claimable=False)
    assert await executor(broker, store).execute(fired()) is Outcome.NOT_CLAIMED
    assert broker.sends == []


async def test_final_error_fails_at_once_with_the_brokers_words() -> None:
    """A final refusal is not retried and its message becomes the trigger's reason."""
    broker, store = Broker(fail(ErrorKind.FINAL)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.FAILED
    assert len(broker.sends) == 1
    assert store.calls[-1] == ("failed", "scripted final")


async def test_retryable_error_is_sent_again() -> None:
    """A request that never reached the broker is sent again, and only one order exists."""
    broker, store = Broker(fail(ErrorKind.RETRY)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert len(broker.sends) == 2
    assert orders(broker) == 1
    assert broker.finds == 0


async def test_ambiguous_error_with_the_order_accepted_is_found_not_resent() -> None:
    """Accepted then an error: the tag look-up finds the order, and nothing is sent again."""
    broker, store = Broker(fail(ErrorKind.AMBIGUOUS, accept_first=True)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert len(broker.sends) == 1
    assert orders(broker) == 1
    assert store.calls[-1] == ("placed", (broker.book[next(iter(broker.book))][0], 0))


async def test_ambiguous_error_without_an_order_is_resent_once_looked_up() -> None:
    """An error before acceptance: the look-up finds nothing, so the order is sent again."""
    broker, store = Broker(fail(ErrorKind.AMBIGUOUS)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert broker.finds == 1
    assert len(broker.sends) == 2
    assert orders(broker) == 1


async def test_spent_retries_fail_with_the_last_reason() -> None:
    """After max_retries + 1 refused attempts, the trigger fails saying so."""
    broker, store = Broker(*[fail(ErrorKind.RETRY)] * 3), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.FAILED
    assert len(broker.sends) == 3
    assert store.calls[-1] == ("failed", "gave up after 3 attempts: scripted retry")


async def test_last_ambiguous_attempt_is_looked_up_before_failing() -> None:
    """If the last attempt was accepted after all, the trigger is placed, not failed."""
    steps = [fail(ErrorKind.AMBIGUOUS)] * 2 + [fail(ErrorKind.AMBIGUOUS, accept_first=True)]
    broker, store = Broker(*steps), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert orders(broker) == 1
    assert len(broker.sends) == 3


async def test_auth_error_releases_the_claim_and_raises() -> None:
    """An expired session gives the claim back (not failed) and stops after one attempt."""
    broker, store = Broker(fail(ErrorKind.AUTH)), Store()
    trigger = fired()
    with pytest.raises(AuthExpired):
        await executor(broker, store).execute(trigger)
    assert len(broker.sends) == 1
    assert store.status[trigger.trigger.id] == "active"


async def test_unreadable_book_leaves_the_trigger_for_reconciliation() -> None:
    """If the book cannot be read after an ambiguous error, nothing is resent or decided."""
    broker, store = Broker(fail(ErrorKind.AMBIGUOUS), find_errors=10), Store()
    trigger = fired()
    assert await executor(broker, store).execute(trigger) is Outcome.UNRESOLVED
    assert len(broker.sends) == 1
    assert store.status[trigger.trigger.id] == "triggered"


async def test_burst_is_queued_within_the_rate_limit() -> None:
    """Twenty-five simultaneous fires are all placed, never more than 10 in any 0.2 s."""
    broker, store = Broker(), Store()
    run = executor(broker, store, count=10, seconds=0.2)
    outcomes = await asyncio.gather(*(run.execute(fired()) for _ in range(25)))
    assert outcomes == [Outcome.PLACED] * 25
    assert orders(broker) == 25
    for start in broker.sends:
        assert sum(start <= t < start + 0.2 for t in broker.sends) <= 10


async def test_on_send_marks_the_first_request_only() -> None:
    """The latency hook runs once, before the first request is written, not on retries."""
    broker, store = Broker(fail(ErrorKind.RETRY)), Store()
    calls: list[int] = []
    outcome = await executor(broker, store).execute(
        fired(), on_send=lambda: calls.append(len(broker.sends))
    )
    assert outcome is Outcome.PLACED
    assert calls == [0], "called once, before any request was sent"
    assert len(broker.sends) == 2


def fail_with(kind: ErrorKind, status: int, *, accept_first: bool) -> Step:
    def step(broker: Broker, intent: OrderIntent) -> str:
        if accept_first:
            broker.accept(intent)
        raise BrokerError(kind, "Order could not be placed", http_status=status)

    return step


async def test_final_error_with_5xx_is_checked_once_and_never_resent() -> None:
    """A final refusal sent with a 5xx is looked up once: found means placed, else failed."""
    broker, store = Broker(fail_with(ErrorKind.FINAL, 500, accept_first=True)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert len(broker.sends) == 1
    broker, store = Broker(fail_with(ErrorKind.FINAL, 500, accept_first=False)), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.FAILED
    assert (len(broker.sends), broker.finds) == (1, 1)
    assert store.calls[-1] == ("failed", "Order could not be placed")


def rate_limited(broker: Broker, intent: OrderIntent) -> str:
    raise BrokerError(ErrorKind.RETRY, "Too many requests", http_status=429)


async def test_rate_limiting_queues_without_spending_retries() -> None:
    """Five 429s in a row (more than max_retries) still end in one placed order."""
    broker, store = Broker(*[rate_limited] * 5), Store()
    assert await executor(broker, store).execute(fired()) is Outcome.PLACED
    assert len(broker.sends) == 6
    assert orders(broker) == 1


async def test_rate_limiting_past_its_window_fails() -> None:
    """Once 429s outlast `rate_limited_for`, they count as retries and the order fails."""
    broker, store = Broker(*[rate_limited] * 10), Store()
    run = Executor(
        broker,
        store,
        throttle=Throttle([Limit(1000, 1.0)]),
        policy=RetryPolicy(max_retries=2, backoff=0.001, lookups=3, rate_limited_for=0.0),
        rng=random.Random(7),
    )
    assert await run.execute(fired()) is Outcome.FAILED
    assert len(broker.sends) == 3


def leased(broker: Broker, store: Store, lease: LeasePolicy, **policy: float) -> Executor:
    return Executor(
        broker,
        store,
        throttle=Throttle([Limit(1000, 1.0)]),
        policy=RetryPolicy(max_retries=2, backoff=policy.get("backoff", 0.001), lookups=3),
        lease=lease,
        rng=random.Random(7),
    )


async def test_a_free_slot_sends_with_the_claim_and_each_retry_records_its_request() -> None:
    """The claim carries the first order_sent; every later request gets its own first."""
    broker, store = Broker(fail(ErrorKind.RETRY)), Store()
    trigger = fired()
    assert await executor(broker, store).execute(trigger) is Outcome.PLACED
    assert [name for name, _ in store.calls if name != "renew"] == [
        "claim",
        "retry",
        "order_sent",
        "placed",
    ]
    assert store.calls[0] == ("claim", (trigger.trigger.id, True))
    assert store.attempts[trigger.trigger.id] == len(broker.sends) == 2
    assert store.tags[trigger.trigger.id] == broker.tag(trigger.trigger.id, Leg.FIRST)


async def test_a_busy_slot_claims_first_and_records_the_request_when_it_leaves() -> None:
    """While the throttle is full the claim sends nothing; order_sent precedes the request."""
    broker, store = Broker(), Store()
    run = executor(broker, store, count=1, seconds=0.05)
    first, second = fired(), fired()
    outcomes = await asyncio.gather(run.execute(first), run.execute(second))
    assert outcomes == [Outcome.PLACED, Outcome.PLACED]
    assert ("claim", (first.trigger.id, True)) in store.calls
    assert ("claim", (second.trigger.id, False)) in store.calls
    assert ("order_sent", 1) in store.calls
    assert store.attempts == {first.trigger.id: 1, second.trigger.id: 1}
    assert len(broker.sends) == 2


async def test_a_lost_claim_gives_the_slot_back() -> None:
    """A slot taken for a claim that was lost counts nowhere: the next order goes at once."""
    broker, store = Broker(), Store(claimable=False)
    run = executor(broker, store, count=1, seconds=60.0)
    assert await run.execute(fired()) is Outcome.NOT_CLAIMED
    store.claimable = True  # the same executor and throttle, now with a claim that wins
    assert await within(run.execute(fired()), 1.0) is Outcome.PLACED
    assert store.calls[-2][0] == "claim"
    assert store.calls[-2][1][1] is True, "the slot was free at once"


async def test_the_lease_is_renewed_while_an_order_waits_out_rate_limiting() -> None:
    """Queued behind 429s for several lease thirds, the claim is renewed and then placed."""
    broker, store = Broker(*[rate_limited] * 4), Store()
    run = leased(
        broker, store, LeasePolicy(length=0.3, request_timeout=0.01, margin=0.01), backoff=0.1
    )
    assert await run.execute(fired()) is Outcome.PLACED
    assert sum(1 for name, _ in store.calls if name == "renew") >= 2
    assert len(broker.sends) == 5


async def test_no_request_leaves_unless_the_lease_outlasts_it() -> None:
    """A retry whose request could outlive the lease is not sent: left for the sweep."""
    broker, store = Broker(fail(ErrorKind.RETRY)), Store()
    trigger = fired()
    run = leased(broker, store, LeasePolicy(length=1.0, request_timeout=5.0))
    assert await run.execute(trigger) is Outcome.UNRESOLVED
    assert len(broker.sends) == 1
    assert store.status[trigger.trigger.id] == "triggered"
    assert "order_sent" not in [name for name, _ in store.calls]


async def test_a_claim_taken_over_stops_the_order_and_writes_nothing() -> None:
    """Once another engine holds the claim, no further request leaves and no outcome is written."""
    broker, store = Broker(fail(ErrorKind.RETRY)), Store(held=False)
    trigger = fired()
    assert await executor(broker, store).execute(trigger) is Outcome.NOT_CLAIMED
    assert len(broker.sends) == 1
    assert store.status[trigger.trigger.id] == "triggered"
    broker, store = Broker(), Store(held=False)
    assert await executor(broker, store).execute(fired()) is Outcome.NOT_CLAIMED
    assert [name for name, _ in store.calls] == ["claim"]
