"""The store's side of the engine's protocol, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired
from hmt.core.rules import order_for
from hmt.core.tags import broker_tag
from hmt.core.types import Leg
from hmt.store.execution import ExecutionStore
from hmt.store.triggers import TriggerNotFound, TriggerStore
from tests.store.conftest import Clock
from tests.support.factories import make_trigger


@pytest.fixture
def execution(store: TriggerStore) -> ExecutionStore:
    return ExecutionStore(store)


async def kinds(store: TriggerStore, trigger_id: str) -> list[EventKind]:
    return [e.kind for e in await store.history("alice", trigger_id)]


async def test_claim_then_placed_writes_sent_and_placed_together(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A placed outcome stores the order id and appends order_sent then placed."""
    trigger = make_trigger(trigger_price_1=160_000)
    await store.create(trigger)
    assert await execution.claim(Fired(trigger, Leg.FIRST, 160_000))
    await execution.placed(trigger.id, "1953341975595868160", 1)
    record = await store.get("alice", trigger.id)
    assert record.status is Status.PLACED
    assert record.order_id == "1953341975595868160"
    assert record.broker_tag == broker_tag(trigger.id, Leg.FIRST)
    assert await kinds(store, trigger.id) == [
        EventKind.CREATED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.PLACED,
    ]


async def test_retry_failed_and_reconciled_outcomes(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Retries count attempts; a failure keeps its reason; a reconciled placement sends nothing."""
    first, second = make_trigger(), make_trigger()
    for trigger in (first, second):
        await store.create(trigger)
        assert await execution.claim(Fired(trigger, Leg.FIRST, 160_000))
    await execution.retry(first.id, 1, "ambiguous: timeout")
    await execution.failed(first.id, "Insufficient funds", 2)
    failed = await store.get("alice", first.id)
    assert failed.status is Status.FAILED
    assert failed.error_message == "Insufficient funds"
    assert failed.attempts == 2
    await execution.placed(second.id, "42", 0)
    assert EventKind.ORDER_SENT not in await kinds(store, second.id)


async def test_released_claim_is_active_again(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A released claim puts the trigger back in the active set the engine loads."""
    trigger = make_trigger()
    await store.create(trigger)
    await execution.claim(Fired(trigger, Leg.FIRST, 160_000))
    assert await execution.active(trigger.id) is None
    await execution.released(trigger.id, "TokenException", 1)
    assert await execution.active(trigger.id) == trigger
    assert [t.id async for batch in execution.active_batches() for t in batch] == [trigger.id]


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


async def test_in_flight_lists_claimed_triggers_with_their_intent(
    store: TriggerStore, execution: ExecutionStore, clock: Clock
) -> None:
    """Recovery sees each triggered row's intent and claim time; active rows are not listed."""
    claimed, idle = make_trigger(), make_trigger()
    for trigger in (claimed, idle):
        await store.create(trigger)
    await execution.claim(Fired(claimed, Leg.FIRST, 160_000))
    (left,) = await execution.in_flight()
    assert left.intent == order_for(claimed, Leg.FIRST)
    assert left.triggered_at == clock.now
    assert await execution.active(idle.id) == idle
    assert await execution.active("not-a-uuid") is None  # type: ignore[arg-type]
    await execution.give_up(claimed.id, "not sent again")
    assert (await store.get("alice", claimed.id)).status is Status.FAILED
