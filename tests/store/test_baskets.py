"""The store's side of per-order exactly once for baskets, on SQLite and PostgreSQL.

Each order of a basket is written on its own row of `hmt_trigger_orders`,
conditional on the trigger being `triggered` under our claim; the trigger's
outcome comes from `finish` once every order is settled (docs/engine.md, "Baskets").
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hmt.core.errors import ClaimLost, IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, Trigger
from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.execution import ExecutionStore
from hmt.store.tables import ORDER_PENDING, ORDER_PLACED
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.baskets import make_basket, order_rows
from tests.support.factories import make_trigger

LEASE = timedelta(seconds=30)


@pytest.fixture
def execution(store: TriggerStore) -> ExecutionStore:
    return ExecutionStore(store, owner="engine-a", lease=LEASE)


@pytest.fixture
def other(store: TriggerStore) -> ExecutionStore:
    """A second engine on the same database."""
    return ExecutionStore(store, owner="engine-b", lease=LEASE)


def tag(trigger: Trigger, position: int) -> str:
    return broker_tag(trigger.id, Leg.FIRST, position)


async def claimed_basket(store: TriggerStore, execution: ExecutionStore, size: int = 3) -> Trigger:
    trigger = (await store.create(make_basket(size))).trigger
    assert await execution.claim(Fired(trigger, Leg.FIRST, 101_000), tag(trigger, 0))
    return trigger


async def sent_and(
    execution: ExecutionStore, trigger: Trigger, position: int, outcome: str
) -> None:
    """One order's request and its outcome (`placed` with an id, or `failed`)."""
    where = {"position": position, "tag": tag(trigger, position)}
    await execution.order_sent(trigger.id, **where)
    if outcome == "placed":
        await execution.placed(trigger.id, f"90000{position}", 1, **where)
    else:
        await execution.failed(trigger.id, f"refused {position}", 1, **where)


async def test_an_orders_writes_are_its_row_and_events_and_the_trigger_stays_triggered(
    store: TriggerStore, execution: ExecutionStore, clock: Clock
) -> None:
    """order_sent makes the order's row (pending, attempts 1), counts the request on the
    trigger too and renews the lease; placed settles the row; the trigger stays
    `triggered` with the claim's own tag and writes no outcome of its own."""
    trigger = await claimed_basket(store, execution)
    clock.advance(seconds=10)
    where = {"position": 1, "tag": tag(trigger, 1)}
    assert await execution.order_sent(trigger.id, **where) == 1
    (row,) = await order_rows(store, trigger.id)
    assert (row.position, row.status, row.attempts, row.tag) == (
        1,
        ORDER_PENDING,
        1,
        tag(trigger, 1),
    )
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.attempts) == (Status.TRIGGERED, 1)
    assert record.claim_expires_at == clock.now + LEASE
    assert record.broker_tag == tag(trigger, 0)
    await execution.retry(trigger.id, 1, "503", **where)
    assert await execution.order_sent(trigger.id, **where) == 2
    await execution.placed(trigger.id, "700", 2, **where)
    (row,) = await order_rows(store, trigger.id)
    assert (row.status, row.order_id, row.attempts) == (ORDER_PLACED, "700", 2)
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.order_id, record.attempts) == (Status.TRIGGERED, None, 2)
    history = await store.history("alice", trigger.id)
    assert [(e.kind, e.payload.get("position"), e.payload.get("tag")) for e in history[3:]] == [
        (EventKind.ORDER_SENT, 1, tag(trigger, 1)),
        (EventKind.RETRY, 1, tag(trigger, 1)),
        (EventKind.ORDER_SENT, 1, tag(trigger, 1)),
        (EventKind.PLACED, 1, tag(trigger, 1)),
    ]


async def test_a_settled_order_is_never_written_or_sent_again(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A placed (or failed) order refuses every later write: its request cannot be
    recorded, so the executor never sends it."""
    trigger = await claimed_basket(store, execution)
    await sent_and(execution, trigger, 0, "placed")
    await sent_and(execution, trigger, 1, "failed")
    for position in (0, 1):
        where = {"position": position, "tag": tag(trigger, position)}
        with pytest.raises(IllegalTransition):
            await execution.order_sent(trigger.id, **where)
        with pytest.raises(IllegalTransition):
            await execution.placed(trigger.id, "1", 0, **where)


async def test_an_order_found_by_its_tag_without_a_counted_request_is_counted(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Found at the broker by its tag with no row (its `order_sent` went with a lost
    commit): `order_sent` {reconciled}, `reconciled`, `placed`, and the request counted on
    the row and the trigger, as reconciliation records one. An order whose row counts
    its request is only placed."""
    trigger = await claimed_basket(store, execution)
    counted = {"position": 0, "tag": tag(trigger, 0)}
    await execution.order_sent(trigger.id, **counted)
    await execution.placed(trigger.id, "900000", 0, **counted)
    uncounted = {"position": 1, "tag": tag(trigger, 1)}
    await execution.placed(trigger.id, "900001", 0, **uncounted)
    rows = await order_rows(store, trigger.id)
    assert [(r.position, r.status, r.attempts, r.order_id) for r in rows] == [
        (0, ORDER_PLACED, 1, "900000"),
        (1, ORDER_PLACED, 1, "900001"),
    ]
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.attempts) == (Status.TRIGGERED, 2)
    history = await store.history("alice", trigger.id)
    written = [(e.kind, e.payload.get("position")) for e in history if "position" in e.payload]
    assert written == [
        (EventKind.ORDER_SENT, 0),
        (EventKind.RECONCILED, 0),
        (EventKind.PLACED, 0),
        (EventKind.ORDER_SENT, 1),
        (EventKind.RECONCILED, 1),
        (EventKind.PLACED, 1),
    ]
    sent = [e.payload for e in history if e.kind is EventKind.ORDER_SENT]
    assert sent[1]["reconciled"] is True
    assert sum(e.kind is EventKind.ORDER_SENT for e in history) == record.attempts


async def test_every_basket_write_needs_our_claim(
    store: TriggerStore, execution: ExecutionStore, other: ExecutionStore
) -> None:
    """Another engine writes nothing (ClaimLost); nobody writes once the trigger is done."""
    trigger = await claimed_basket(store, execution, 2)
    where = {"position": 1, "tag": tag(trigger, 1)}
    with pytest.raises(ClaimLost):
        await other.order_sent(trigger.id, **where)
    with pytest.raises(ClaimLost):
        await other.finish(trigger.id)
    assert await order_rows(store, trigger.id) == []
    await sent_and(execution, trigger, 0, "placed")
    await sent_and(execution, trigger, 1, "placed")
    assert await execution.finish(trigger.id) is Status.PLACED
    with pytest.raises(IllegalTransition):
        await execution.order_sent(trigger.id, position=1, tag=tag(trigger, 1))
    with pytest.raises(IllegalTransition):
        await execution.finish(trigger.id)


async def test_finish_waits_for_every_order_then_names_the_failed_ones(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Unsettled: nothing written. All settled: `failed` naming each failed position and
    its reason, with the first placed order's id; all placed: `placed`."""
    trigger = await claimed_basket(store, execution, 4)
    await sent_and(execution, trigger, 0, "failed")
    await sent_and(execution, trigger, 1, "placed")
    await sent_and(execution, trigger, 2, "failed")
    before = await store.history("alice", trigger.id)
    assert await execution.finish(trigger.id) is Status.TRIGGERED  # position 3 unsent
    assert await store.history("alice", trigger.id) == before
    await sent_and(execution, trigger, 3, "placed")
    assert await execution.finish(trigger.id) is Status.FAILED
    record = await store.load(trigger.id)
    assert record is not None
    assert record.error_message == (
        "2 of 4 orders failed: position 0: refused 0; position 2: refused 2"
    )
    assert (record.order_id, record.attempts) == ("900001", 4)
    last = (await store.history("alice", trigger.id))[-1]
    assert (last.kind, last.payload["failed"], last.payload["placed"]) == (
        EventKind.FAILED,
        [0, 2],
        2,
    )
    placed = await claimed_basket(store, execution, 2)
    await sent_and(execution, placed, 0, "placed")
    await sent_and(execution, placed, 1, "placed")
    assert await execution.finish(placed.id) is Status.PLACED
    record = await store.load(placed.id)
    assert record is not None
    assert (record.order_id, record.error_message) == ("900000", None)


async def test_finish_of_a_one_order_leg_reports_its_status(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A leg of one order keeps v1's writes; finish only reads its outcome."""
    trigger = make_trigger(trigger_price_1=160_000)
    await store.create(trigger)
    fired = Fired(trigger, Leg.FIRST, 160_000)
    assert await execution.claim(fired, broker_tag(trigger.id, Leg.FIRST), sending=True)
    assert await execution.finish(trigger.id) is Status.TRIGGERED
    await execution.placed(trigger.id, "1", 1)
    assert await execution.finish(trigger.id) is Status.PLACED
    assert await order_rows(store, trigger.id) == []


async def test_an_expired_session_releases_a_basket_only_if_nothing_may_be_at_the_broker(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Released (rows cleared, armed again) when every other order failed; kept
    `triggered` (the refusal a `retry`) when another order is placed or pending."""
    trigger = await claimed_basket(store, execution)
    await sent_and(execution, trigger, 0, "failed")
    where = {"position": 1, "tag": tag(trigger, 1)}
    await execution.order_sent(trigger.id, **where)
    assert await execution.released(trigger.id, "TokenException", 1, **where) is True
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.claimed_by) == (Status.ACTIVE, None)
    assert await order_rows(store, trigger.id) == []

    kept = await claimed_basket(store, execution)
    await sent_and(execution, kept, 0, "placed")
    where = {"position": 1, "tag": tag(kept, 1)}
    await execution.order_sent(kept.id, **where)
    assert await execution.released(kept.id, "TokenException", 1, **where) is False
    record = await store.load(kept.id)
    assert record is not None
    assert (record.status, record.claimed_by) == (Status.TRIGGERED, "engine-a")
    last = (await store.history("alice", kept.id))[-1]
    assert (last.kind, last.payload["position"]) == (EventKind.RETRY, 1)


async def test_adopt_returns_only_unsettled_orders_and_finishes_a_settled_basket(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A basket left `triggered` comes back with its pending and never-sent orders only,
    in listed order, with their tags; one whose orders are all settled is finished."""
    trigger = await claimed_basket(store, execution, 4)
    await sent_and(execution, trigger, 0, "placed")
    await execution.order_sent(trigger.id, position=1, tag=tag(trigger, 1))
    await sent_and(execution, trigger, 2, "failed")
    done = await claimed_basket(store, execution, 2)
    await sent_and(execution, done, 0, "placed")
    await sent_and(execution, done, 1, "placed")  # the crash came before `finish`
    taken = await execution.adopt(own=True, tag_of=broker_tag)
    (left,) = taken
    assert [(i.position, i.tag, i.basket) for i in left.basket] == [
        (1, tag(trigger, 1), 4),
        (3, tag(trigger, 3), 4),
    ]
    assert left.intent == left.basket[0]
    assert [i.quantity for i in left.basket] == [2, 4]  # the orders' own specs
    record = await store.load(done.id)
    assert record is not None
    assert (record.status, record.order_id) == (Status.PLACED, "900000")
    # Our own claim again (start-up): a never-sent order's tag needs the broker's rule.
    with pytest.raises(ValueError, match="tag_of"):
        await execution.adopt(own=True)
