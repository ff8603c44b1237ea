"""Reconciliation against the broker's order book, and claims that do not wait for the disk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.broker import OrderReport
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, Trigger
from hmt.core.types import Leg, Side, TriggerId
from hmt.kite.segments import divisor_for
from hmt.kite.tags import broker_tag
from hmt.store.db import Database, create_engine
from hmt.store.execution import ExecutionStore
from hmt.store.tables import gtt_orders
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.factories import INFY, RELIANCE, make_oco, make_trigger
from tests.support.flush import FLUSHED, NOT_FLUSHED, watch_flush

LEASE = timedelta(seconds=30)


@pytest.fixture
def execution(store: TriggerStore) -> ExecutionStore:
    return ExecutionStore(store, owner="engine-a", lease=LEASE)


def order(tag: str, order_id: str, token: int | None = INFY) -> OrderReport:
    return OrderReport(order_id=order_id, status="COMPLETE", tag=tag, instrument_token=token)


def tag_of(trigger_id: TriggerId, leg: Leg) -> str:
    return broker_tag(trigger_id, leg)


async def kinds(store: TriggerStore, trigger_id: str) -> list[EventKind]:
    return [e.kind for e in await store.history("alice", trigger_id)]


async def claim(execution: ExecutionStore, trigger: Trigger, leg: Leg = Leg.FIRST) -> None:
    fired = Fired(trigger, leg, trigger.trigger_price_1)
    assert await execution.claim(fired, tag_of(trigger.id, leg), sending=True)


async def test_an_active_trigger_whose_tag_is_in_the_book_ends_placed(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A lost claim (the row active again) with its order at the broker: claimed and placed
    in one write, with the book's order id and a full history; nothing else is touched."""
    lost, untouched = make_trigger(), make_trigger()
    await store.create(lost)
    await store.create(untouched)
    book = [order(tag_of(lost.id, Leg.FIRST), "1001"), order("SOMEONEELSE", "1002")]
    settled = await execution.reconcile(book, tag_of)
    assert [(s.trigger_id, s.order_id, s.was) for s in settled] == [
        (lost.id, "1001", Status.ACTIVE)
    ]
    record = await store.load(lost.id)
    assert record is not None
    assert (record.status, record.order_id, record.attempts) == (Status.PLACED, "1001", 1)
    assert (record.broker_tag, record.triggered_leg) == (tag_of(lost.id, Leg.FIRST), Leg.FIRST)
    assert await kinds(store, lost.id) == [
        EventKind.CREATED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.RECONCILED,
        EventKind.PLACED,
    ]
    other = await store.load(untouched.id)
    assert other is not None
    assert other.status is Status.ACTIVE
    assert await kinds(store, untouched.id) == [EventKind.CREATED]
    assert await execution.reconcile(book, tag_of) == []  # a second read changes nothing


async def test_a_paused_trigger_whose_tag_is_in_the_book_is_resumed_and_placed(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Paused in the store but ordered (its resume and claim lost): settled as placed,
    with `resumed` written first, so the user's next resume cannot order it again."""
    lost = make_trigger()
    await store.create(lost)
    await store.pause("alice", lost.id)
    settled = await execution.reconcile([order(tag_of(lost.id, Leg.FIRST), "1003")], tag_of)
    assert [(s.trigger_id, s.order_id, s.was) for s in settled] == [
        (lost.id, "1003", Status.PAUSED)
    ]
    record = await store.load(lost.id)
    assert record is not None
    assert (record.status, record.order_id, record.attempts) == (Status.PLACED, "1003", 1)
    assert await kinds(store, lost.id) == [
        EventKind.CREATED,
        EventKind.PAUSED,
        EventKind.RESUMED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.RECONCILED,
        EventKind.PLACED,
    ]


async def test_an_oco_whose_second_leg_is_in_the_book_ends_placed_on_that_leg(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """The leg comes from the tag found: the oco is placed on it and its other leg is gone."""
    oco = make_oco(Side.SELL, stop=150_000, target=170_000)
    await store.create(oco)
    await execution.reconcile([order(tag_of(oco.id, Leg.SECOND), "2002")], tag_of)
    record = await store.load(oco.id)
    assert record is not None
    assert (record.status, record.triggered_leg) == (Status.PLACED, Leg.SECOND)
    assert [t.id for batch in [b async for b in execution.active_batches()] for t in batch] == []


async def test_a_triggered_trigger_whose_tag_is_in_the_book_ends_placed(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A claim left `triggered` (its outcome not written) is placed from the book, once."""
    trigger = make_trigger()
    await store.create(trigger)
    await claim(execution, trigger)
    settled = await execution.reconcile([order(tag_of(trigger.id, Leg.FIRST), "3003")], tag_of)
    assert [(s.trigger_id, s.was) for s in settled] == [(trigger.id, Status.TRIGGERED)]
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.order_id, record.attempts) == (Status.PLACED, "3003", 1)
    assert await kinds(store, trigger.id) == [
        EventKind.CREATED,
        EventKind.FIRED,
        EventKind.CLAIMED,
        EventKind.ORDER_SENT,
        EventKind.RECONCILED,
        EventKind.PLACED,
    ]


async def test_triggered_rows_not_in_the_book_and_skipped_rows_are_left(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Only tags in the book settle anything; a row this process is settling is its task's."""
    absent, skipped = make_trigger(), make_trigger()
    for trigger in (absent, skipped):
        await store.create(trigger)
        await claim(execution, trigger)
    book = [order(tag_of(skipped.id, Leg.FIRST), "4004")]
    assert await execution.reconcile(book, tag_of, skip={skipped.id}) == []
    for trigger in (absent, skipped):
        record = await store.load(trigger.id)
        assert record is not None
        assert record.status is Status.TRIGGERED


async def test_another_live_engines_claim_is_left_and_an_expired_one_is_settled(
    store: TriggerStore, execution: ExecutionStore, clock: Clock
) -> None:
    """Issue 11's rule: a claim under another engine's running lease is not ours to settle."""
    trigger = make_trigger()
    await store.create(trigger)
    other = ExecutionStore(store, owner="engine-b", lease=LEASE)
    await claim(other, trigger)
    book = [order(tag_of(trigger.id, Leg.FIRST), "5005")]
    assert await execution.reconcile(book, tag_of) == []
    clock.advance(seconds=31)
    assert [s.trigger_id for s in await execution.reconcile(book, tag_of)] == [trigger.id]
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.claimed_by) == (Status.PLACED, "engine-a")


async def test_orders_that_do_not_name_their_instrument_are_matched_against_every_row(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """The instrument only narrows the search: without it every active row's tag is computed."""
    trigger = make_trigger(instrument_token=RELIANCE, tradingsymbol="RELIANCE")
    await store.create(trigger)
    misnamed = [order(tag_of(trigger.id, Leg.FIRST), "6006", token=INFY)]
    assert await execution.reconcile(misnamed, tag_of) == []  # narrowed to INFY: not found
    unnamed = [order(tag_of(trigger.id, Leg.FIRST), "6006", token=None)]
    assert [s.trigger_id for s in await execution.reconcile(unnamed, tag_of)] == [trigger.id]


async def test_an_edited_or_cancelled_row_is_not_placed_by_a_stale_match(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """Settling an active row is conditional: a row cancelled meanwhile stays cancelled."""
    trigger = make_trigger()
    await store.create(trigger)
    await store.cancel("alice", trigger.id)
    assert await execution.reconcile([order(tag_of(trigger.id, Leg.FIRST), "7007")], tag_of) == []
    record = await store.load(trigger.id)
    assert record is not None
    assert record.status is Status.CANCELLED


# --- claims that do not wait for the disk --------------------------------------------------


async def test_a_claim_commits_without_the_flush_and_its_outcome_with_it(
    store: TriggerStore, execution: ExecutionStore, db: Database
) -> None:
    """The claim's transaction runs with synchronous_commit off (SQLite: NORMAL); the outcome's
    after it on the same pool is flushed again (on / FULL)."""
    trigger = make_trigger()
    await store.create(trigger)
    seen: list[tuple[bool, str]] = []
    watch_flush(db, seen)
    await claim(execution, trigger)
    await execution.placed(trigger.id, "8008", 1)
    assert seen == [(False, NOT_FLUSHED[db.dialect]), (True, FLUSHED[db.dialect])]


async def test_a_pool_of_its_own_defers_the_flush_without_a_statement(
    url: str, clock: Clock
) -> None:
    """As the composition builds it: claims run on a pool made with `deferred_flush` (no
    statement of their own), outcomes on the main pool, flushed."""
    db = Database(
        create_engine(url),
        clock=clock,
        deferred=create_engine(url, application_name="hmt-claims", deferred_flush=True),
    )
    try:
        store = TriggerStore(db, clock=clock, divisor_of=divisor_for)
        execution = ExecutionStore(store, owner="engine-a", lease=LEASE)
        trigger = make_trigger()
        await store.create(trigger)
        seen: list[tuple[bool, str]] = []
        watch_flush(db, seen)
        await claim(execution, trigger)
        await execution.placed(trigger.id, "8009", 1)
        assert seen == [(False, NOT_FLUSHED[db.dialect]), (True, FLUSHED[db.dialect])]
        record = await store.load(trigger.id)
        assert record is not None
        assert record.status is Status.PLACED
    finally:
        await db.dispose()


async def test_sync_durability_flushes_the_claim(store: TriggerStore, db: Database) -> None:
    """HMT_CLAIM_DURABILITY=sync (`durable_claims`): the claim waits for the disk as before."""
    execution = ExecutionStore(store, owner="engine-a", lease=LEASE, durable_claims=True)
    trigger = make_trigger()
    await store.create(trigger)
    seen: list[tuple[bool, str]] = []
    watch_flush(db, seen)
    await claim(execution, trigger)
    assert seen == [(True, FLUSHED[db.dialect])]


async def test_a_failed_deferred_claim_leaves_no_unflushed_connection(
    store: TriggerStore, execution: ExecutionStore, db: Database
) -> None:
    """A claim that loses (no row) or raises gives its connection back flushed for the next
    writer: the level is set per transaction, never left behind."""
    trigger = make_trigger()
    await store.create(trigger)
    await store.cancel("alice", trigger.id)
    fired = Fired(trigger, Leg.FIRST, trigger.trigger_price_1)
    assert not await execution.claim(fired, tag_of(trigger.id, Leg.FIRST), sending=True)
    seen: list[tuple[bool, str]] = []
    watch_flush(db, seen)

    async def touch(conn: AsyncConnection) -> None:
        await conn.execute(
            update(gtt_orders)
            .where(gtt_orders.c.id == trigger.id)
            .values(attempts=gtt_orders.c.attempts)
        )

    for _ in range(3):
        await db.transaction(touch)
    assert seen == [(True, FLUSHED[db.dialect])] * 3


async def test_an_active_row_still_carrying_an_earlier_tag_is_settled_too(
    store: TriggerStore, execution: ExecutionStore
) -> None:
    """A claim released (session expired) leaves its tag on the active row: if the book shows
    that tag, the row is placed like any other active one."""
    trigger = make_trigger()
    await store.create(trigger)
    await claim(execution, trigger)
    await execution.released(trigger.id, "token expired", 1)
    book = [order(tag_of(trigger.id, Leg.FIRST), "9009")]
    assert [s.was for s in await execution.reconcile(book, tag_of)] == [Status.ACTIVE]
    record = await store.load(trigger.id)
    assert record is not None
    assert (record.status, record.order_id) == (Status.PLACED, "9009")
