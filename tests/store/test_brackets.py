"""Brackets in the store, on SQLite and PostgreSQL: exits armed exactly once, for
exactly what has filled, growing while no exit has fired, a top-up after one has."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from hmt.core.brackets import EntryReport, Exits, exit_id
from hmt.core.errors import InvalidTrigger
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Fired
from hmt.core.types import Leg, Side
from hmt.kite.tags import broker_tag
from hmt.store.brackets import BracketStore
from hmt.store.execution import ExecutionStore
from hmt.store.triggers import TriggerStore
from tests.support.factories import make_trigger

EXITS = Exits(target=170_000, stop=150_000)


@pytest.fixture
def brackets(store: TriggerStore) -> BracketStore:
    return BracketStore(store)


async def placed_entry(
    store: TriggerStore, brackets: BracketStore, quantity: int = 10
) -> tuple[str, str]:
    """A bracket whose entry fired and was placed: its id and its entry order's tag."""
    entry = make_trigger(quantity=quantity)
    await brackets.create(entry, EXITS)
    execution = ExecutionStore(store, owner="engine-a", lease=timedelta(seconds=30))
    tag = broker_tag(entry.id, Leg.FIRST, 0)
    assert await execution.claim(Fired(entry, Leg.FIRST, 160_000), tag)
    await execution.order_sent(entry.id)
    await execution.placed(entry.id, "9001", 1)
    return entry.id, tag


async def test_create_and_read(store: TriggerStore, brackets: BracketStore) -> None:
    entry = make_trigger()
    record = await brackets.create(entry, EXITS)
    assert record.status is Status.OPEN
    assert record.entry.trigger == entry
    assert record.exits == EXITS
    assert record.exit_records == ()
    assert [kind for kind, _, _ in record.history] == [EventKind.CREATED]
    assert (await store.get("alice", entry.id)).status is Status.ACTIVE


async def test_bad_exits_write_nothing(store: TriggerStore, brackets: BracketStore) -> None:
    entry = make_trigger(side=Side.BUY)
    with pytest.raises(InvalidTrigger, match="exits"):
        await brackets.create(entry, Exits(target=150_000, stop=170_000))
    assert await store.list("alice") == []


async def test_partial_fills_arm_then_grow_the_exit(
    store: TriggerStore, brackets: BracketStore
) -> None:
    bracket, tag = await placed_entry(store, brackets)
    assert await brackets.by_tag(tag) == bracket
    first = await brackets.report(bracket, EntryReport("9001", "UPDATE", 4))
    assert first is not None
    assert first.exit_id == exit_id(bracket, 1)
    exit = (await store.get("alice", exit_id(bracket, 1))).trigger
    assert (exit.quantity, exit.side, exit.status) == (4, Side.SELL, Status.ACTIVE)
    assert await brackets.report(bracket, EntryReport("9001", "UPDATE", 4)) is None  # replay
    assert await brackets.report(bracket, EntryReport("9001", "UPDATE", 3)) is None  # stale
    done = await brackets.report(bracket, EntryReport("9001", "COMPLETE", 10))
    assert done is not None
    assert done.exit_id == exit_id(bracket, 1)
    record = await brackets.get("alice", bracket)
    assert (record.status, record.filled, record.armed, record.generation) == (
        Status.FILLED,
        10,
        10,
        1,
    )
    assert [e.trigger.quantity for e in record.exit_records] == [10]
    assert await brackets.by_tag(tag) is None  # no longer waiting for fills
    kinds = [kind for kind, _, _ in record.history]
    assert kinds == [EventKind.CREATED, EventKind.FILLED, EventKind.FILLED, EventKind.ENTRY_CLOSED]


async def test_fills_after_the_exit_fired_get_a_top_up(
    store: TriggerStore, brackets: BracketStore
) -> None:
    bracket, _ = await placed_entry(store, brackets)
    await brackets.report(bracket, EntryReport("9001", "UPDATE", 6))
    exit = (await store.get("alice", exit_id(bracket, 1))).trigger
    execution = ExecutionStore(store, owner="engine-a", lease=timedelta(seconds=30))
    assert await execution.claim(Fired(exit, Leg.SECOND, 171_000), "EXITTAG")
    applied = await brackets.report(bracket, EntryReport("9001", "COMPLETE", 10))
    assert applied is not None
    assert applied.exit_id == exit_id(bracket, 2)
    record = await brackets.get("alice", bracket)
    assert [e.trigger.quantity for e in record.exit_records] == [6, 4]
    assert record.armed == record.filled == 10
    assert record.history[-2][2]["exit"] == "top_up"


async def test_a_claim_with_the_old_quantity_loses_to_a_growth(
    store: TriggerStore, brackets: BracketStore
) -> None:
    """The book may hold the exit at 4 when it grows to 10: that claim must fail."""
    bracket, _ = await placed_entry(store, brackets)
    await brackets.report(bracket, EntryReport("9001", "UPDATE", 4))
    stale = (await store.get("alice", exit_id(bracket, 1))).trigger
    await brackets.report(bracket, EntryReport("9001", "UPDATE", 10))
    execution = ExecutionStore(store, owner="engine-a", lease=timedelta(seconds=30))
    assert not await execution.claim(Fired(stale, Leg.FIRST, 149_000), "EXITTAG")


async def test_racing_reports_arm_exactly_once(store: TriggerStore, brackets: BracketStore) -> None:
    bracket, _ = await placed_entry(store, brackets)
    reports = [EntryReport("9001", "UPDATE", q) for q in (3, 5, 5, 7, 3, 7)]
    await asyncio.gather(*(brackets.report(bracket, r) for r in reports))
    record = await brackets.get("alice", bracket)
    assert record.generation == 1
    assert record.armed == record.filled == 7
    assert [e.trigger.quantity for e in record.exit_records] == [7]


async def test_entry_rejected_fails_with_the_reason(
    store: TriggerStore, brackets: BracketStore
) -> None:
    bracket, _ = await placed_entry(store, brackets)
    applied = await brackets.report(bracket, EntryReport("9001", "REJECTED", 0, "RMS:Margin"))
    assert applied is not None
    assert applied.exit_id is None
    record = await brackets.get("alice", bracket)
    assert (record.status, record.error_message) == (Status.FAILED, "RMS:Margin")
    assert record.exit_records == ()


async def test_entry_cancelled_before_firing_cancels_the_bracket(
    store: TriggerStore, brackets: BracketStore
) -> None:
    entry = make_trigger()
    await brackets.create(entry, EXITS)
    assert await brackets.entry_ended(entry.id) is None  # still active
    await store.cancel("alice", entry.id)
    assert await brackets.entry_ended(entry.id) is Status.CANCELLED
    assert await brackets.live() == []
