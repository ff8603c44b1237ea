"""The store's side of v2's conditions on both databases: notes and reasoned expiry (the
day ranges are the trigger store's, tested with it)."""

from __future__ import annotations

from datetime import date

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.store.conditions import ConditionStore
from hmt.store.db import Database
from hmt.store.triggers import TriggerStore
from tests.support.factories import make_trigger

DAY = date(2026, 3, 2)


async def test_a_note_is_appended_to_an_active_trigger_only(
    db: Database, store: TriggerStore
) -> None:
    conditions = ConditionStore(store, store)
    trigger = make_trigger()
    await store.create(trigger)
    payload = {"leg": 1, "on_gap": "skip", "before": {"high": "1600", "low": "1600"}}
    assert await conditions.note(trigger.id, EventKind.MISSED_TOUCH, payload)
    last = (await store.history("alice", trigger.id))[-1]
    assert (last.kind, dict(last.payload)) == (EventKind.MISSED_TOUCH, payload)
    assert (await store.get("alice", trigger.id)).status is Status.ACTIVE
    await store.cancel("alice", trigger.id)
    assert not await conditions.note(trigger.id, EventKind.MISSED_TOUCH, payload)
    assert (await store.history("alice", trigger.id))[-1].kind is EventKind.CANCELLED


async def test_expire_with_a_reason_moves_only_an_active_trigger(
    db: Database, store: TriggerStore
) -> None:
    conditions = ConditionStore(store, store)
    trigger, paused = make_trigger(), make_trigger()
    await store.create(trigger)
    await store.create(paused)
    await store.pause("alice", paused.id)
    assert await conditions.expire(trigger.id, "its time passed 90 s ago")
    record = await store.get("alice", trigger.id)
    assert record.status is Status.EXPIRED
    assert record.error_message == "its time passed 90 s ago"
    last = (await store.history("alice", trigger.id))[-1]
    assert (last.kind, last.payload["reason"]) == (EventKind.EXPIRED, "its time passed 90 s ago")
    assert not await conditions.expire(trigger.id, "again")
    assert not await conditions.expire(paused.id, "paused")
    assert (await store.get("alice", paused.id)).status is Status.PAUSED
