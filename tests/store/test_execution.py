"""The store's side of the engine's protocol, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from hmt.core.errors import ClaimLost
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, Trigger
from hmt.core.rules import order_for
from hmt.core.types import Leg, TriggerId
from hmt.kite.tags import broker_tag
from hmt.store.execution import ExecutionStore
from hmt.store.tables import gtt_orders
from hmt.store.triggers import TriggerNotFound, TriggerStore
from tests.store.conftest import Clock
from tests.support.factories import make_trigger

LEASE = timedelta(seconds=30)


@pytest.fixture
def execution(store: TriggerStore) -> ExecutionStore:
    return ExecutionStore(store, owner="engine-a", lease=LEASE)


@pytest.fixture
def other(store: TriggerStore) -> ExecutionStore:
    """A second engine on the same database."""
    return ExecutionStore(store, owner="engine-b", lease=LEASE)


async def kinds(store: TriggerStore, trigger_id: str) -> list[EventKind]:
    return [e.kind for e in await store.history("alice", trigger_id)]


async def claimed(execution: ExecutionStore, trigger: Trigger, *, sending: bool = True) -> bool:
    tag = broker_tag(trigger.id, Leg.FIRST)
    return await execution.claim(Fired(trigger, Leg.FIRST, 160_000), tag, sending=sending)


async def claim_row(store: TriggerStore, trigger_id: str) -> tuple[object, object]:
    """The claim's owner and lease expiry, as the stored record reads them."""
    record = await store.load(trigger_id)
    assert record is not None
    return record.claimed_by, record.claim_expires_at


async def test_first_request_sent_with_the_claim_then_placed(
    store: TriggerStore, execution: ExecutionStore, clock: Clock
) -> None:
    """A claim that sends at once records fired, claimed and order_sent; placed adds only itself."""
    trigger = make_trigger(trigger_price_1=160_000)
    await store.create(trigger)
    assert await claimed(execution, trigger)
    assert await claim_row(store, trigger.id) == ("engine-a", clock.now + LEASE)
    await execution.placed(trigger.id, "1953341975595868160", 1)
    record = await store.get("alice", trigger.id)
    assert record.status is Status.PLACED
    assert record.order_id == "1953341975595868160"
    assert record.broker_tag == broker_tag(trigger.id, Leg.FIRST)
    assert record.attempts == 1
    assert await kinds(store, trigger.id) == [
        EventKind.CREATED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.PLACED,
    ]


async def test_each_later_request_is_its_own_order_sent_and_attempt(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """order_sent is written before each later request and counts it; outcomes count nothing."""
    first, second = make_trigger(), make_trigger()
    for trigger in (first, second):
        await store.create(trigger)
        assert await claimed(execution, trigger, sending=False)
    assert await execution.order_sent(first.id) == 1
    await execution.retry(first.id, 1, "ambiguous: timeout")
    assert await execution.order_sent(first.id) == 2
    await execution.failed(first.id, "Insufficient funds", 2)
    failed = await store.get("alice", first.id)
    assert failed.status is Status.FAILED
    assert failed.error_message == "Insufficient funds"
    assert failed.attempts == 2
    sent = [e for e in await store.history("alice", first.id) if e.kind is EventKind.ORDER_SENT]
    assert [e.payload for e in sent] == [
        {"attempt": 1, "engine": "engine-a"},
        {"attempt": 2, "engine": "engine-a"},
    ]
    assert await kinds(store, first.id) == [
        EventKind.CREATED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.RETRY,
        EventKind.ORDER_SENT,
        EventKind.FAILED,
    ]
    # Found by tag: a `reconciled` note, then placed; nothing was sent.
    await execution.placed(second.id, "42", 0)
    history = await store.history("alice", second.id)
    assert [e.kind for e in history][-2:] == [EventKind.RECONCILED, EventKind.PLACED]
    assert history[-2].payload == {"order_id": "42", "engine": "engine-a"}
    assert EventKind.ORDER_SENT not in await kinds(store, second.id)
    assert (await store.get("alice", second.id)).attempts == 0


async def test_released_claim_is_active_again(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A released claim puts the trigger back in the active set the engine loads, unowned."""
    trigger = make_trigger()
    await store.create(trigger)
    await claimed(execution, trigger)
    assert await execution.active(trigger.id) is None
    await execution.released(trigger.id, "TokenException", 1)
    assert await execution.active(trigger.id) == trigger
    assert [t.id async for batch in execution.active_batches() for t in batch] == [trigger.id]
    assert await claim_row(store, trigger.id) == (None, None)


async def test_outcome_for_a_finished_trigger_is_refused(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """No outcome can move a trigger that is not triggered; nothing is half-written."""
    trigger = make_trigger()
    await store.create(trigger)
    with pytest.raises(Exception, match="not allowed"):
        await execution.placed(trigger.id, "1", 1)
    assert await kinds(store, trigger.id) == [EventKind.CREATED]
    with pytest.raises(TriggerNotFound):
        await execution.failed(make_trigger().id, "x", 1)


async def test_renewal_extends_only_our_own_lease(
    store: TriggerStore, execution: ExecutionStore, other: ExecutionStore, clock: Clock
) -> None:
    """Renewal moves our claim's expiry on; another engine's renewal of it changes nothing."""
    trigger = make_trigger()
    await store.create(trigger)
    await claimed(execution, trigger)
    clock.advance(seconds=10)
    assert await execution.renew(trigger.id)
    assert await claim_row(store, trigger.id) == ("engine-a", clock.now + LEASE)
    assert not await other.renew(trigger.id)
    assert await claim_row(store, trigger.id) == ("engine-a", clock.now + LEASE)


async def test_recovery_adopts_own_and_expired_claims_only(
    store: TriggerStore, execution: ExecutionStore, other: ExecutionStore, clock: Clock
) -> None:
    """At start-up an engine takes its own claims and expired ones, never a live one of another's.

    A live claim is another engine's request perhaps still on its way to the
    broker: settling it by tag could send the order a second time.
    """
    own, live, expired, legacy = (make_trigger() for _ in range(4))
    for trigger in (own, live, expired, legacy):
        await store.create(trigger)
    await claimed(execution, own)
    await claimed(other, expired)
    clock.advance(seconds=20)
    await claimed(other, live)
    await claimed(other, legacy)
    async with store.db.engine.begin() as conn:  # claimed by a version without owners
        await conn.execute(
            update(gtt_orders)
            .where(gtt_orders.c.id == legacy.id)
            .values(claimed_by=None, claim_expires_at=None)
        )
    clock.advance(seconds=15)  # `expired`'s lease ran out; `live`'s has 15 s left
    adopted = await execution.adopt(own=True)
    assert {left.intent.trigger_id for left in adopted} == {own.id, expired.id, legacy.id}
    for left in adopted:
        assert left.intent == order_for(
            await _trigger(store, left.intent.trigger_id), Leg.FIRST, left.intent.tag
        )
        assert left.intent.tag == broker_tag(left.intent.trigger_id, Leg.FIRST)
        assert await claim_row(store, left.intent.trigger_id) == ("engine-a", clock.now + LEASE)
    assert await claim_row(store, live.id) == ("engine-b", clock.now + timedelta(seconds=15))
    assert await execution.adopt(own=False) == [], "adopted claims carry a fresh lease"


async def test_a_sweep_takes_expired_claims_and_the_loser_writes_nothing(
    store: TriggerStore, execution: ExecutionStore, other: ExecutionStore, clock: Clock
) -> None:
    """B's sweep takes A's expired claim; A's later writes are refused and change nothing."""
    trigger = make_trigger()
    await store.create(trigger)
    await claimed(execution, trigger)
    assert await other.adopt(own=False) == [], "not expired yet"
    clock.advance(seconds=31)
    assert [left.intent.trigger_id for left in await other.adopt(own=False)] == [trigger.id]
    assert await other.adopt(own=False) == [], "taken once"
    assert not await execution.renew(trigger.id)
    for write in (
        execution.order_sent(trigger.id),
        execution.placed(trigger.id, "1", 1),
        execution.failed(trigger.id, "late", 1),
        execution.give_up(trigger.id, "late"),
    ):
        with pytest.raises(ClaimLost):
            await write
    assert await execution.adopt(own=True) == [], "not A's any more, and not expired"
    before = await kinds(store, trigger.id)
    assert await other.order_sent(trigger.id) == 2
    await other.placed(trigger.id, "7", 2)
    assert (await store.get("alice", trigger.id)).order_id == "7"
    assert await kinds(store, trigger.id) == [*before, EventKind.ORDER_SENT, EventKind.PLACED]


async def test_give_up_notes_the_empty_lookup(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A claim the broker has no order for fails after a `reconciled` note saying so."""
    trigger = make_trigger()
    await store.create(trigger)
    await claimed(execution, trigger)
    await execution.give_up(trigger.id, "not sent again")
    history = await store.history("alice", trigger.id)
    assert [e.kind for e in history][-2:] == [EventKind.RECONCILED, EventKind.FAILED]
    assert history[-2].payload == {"order_id": None, "engine": "engine-a"}
    assert (await store.get("alice", trigger.id)).status is Status.FAILED
    assert await execution.active(trigger.id) is None
    assert await execution.active("not-a-uuid") is None  # type: ignore[arg-type]


async def _trigger(store: TriggerStore, trigger_id: TriggerId) -> Trigger:
    return (await store.get("alice", trigger_id)).trigger
