"""The final read after a run: the store's rows against the simulator's order book.

Every trigger is classified once, Jepsen-style, by what the broker holds for
each of its legs' tags, not by what the engine believes: `placed` with exactly
one order whose id the row carries, `failed` with a reason and no order, or a
fault (lost, duplicated, unexpected order, wrong order id, left in flight).
A basket is judged per order (`tests.support.basket_history`): each position's
tag at most one order, each placed position's order where its row says, the
per-order events apart from the trigger's own outcome.

Used by the crash and race tests, whose engines run as subprocesses;
`tests.support.audit` is the in-process twin for tests built on `running_system`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from hmt.core.events import EventKind, TriggerEvent
from hmt.core.lifecycle import Status
from hmt.core.types import TriggerId
from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.records import TriggerRecord
from hmt.store.triggers import TriggerStore
from tests.support.basket_history import (
    all_tags,
    basket_problem,
    broker_side,
    trigger_events,
)


@contextlib.asynccontextmanager
async def open_store(database_url: str) -> AsyncIterator[TriggerStore]:
    """The test's own connection to the engine's database, migrated to head."""
    engine = create_engine(database_url, application_name="hmt-test")
    await migrate.upgrade(engine)
    try:
        yield TriggerStore(Database(engine, retries=2, backoff_ms=50))
    finally:
        await engine.dispose()


@dataclass
class Audit:
    """Per-class counts (and the offending ids) over the audited triggers."""

    triggers: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    placed: int = 0
    failed: int = 0
    reconciled: int = 0  # placed by finding the tag at the broker, not by an answer
    left_triggered: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # claimed, yet neither placed nor failed
    duplicates: list[str] = field(default_factory=list)  # tags with more than one order
    unexpected: list[str] = field(default_factory=list)  # an order for a trigger not placed
    wrong_order_id: list[str] = field(default_factory=list)
    bad_history: list[str] = field(default_factory=list)  # events disagree with the row

    @property
    def faults(self) -> int:
        return sum(
            len(items)
            for items in (
                self.left_triggered,
                self.lost,
                self.duplicates,
                self.unexpected,
                self.wrong_order_id,
                self.bad_history,
            )
        )

    def summary(self) -> str:
        return (
            f"triggers={self.triggers} placed={self.placed} failed={self.failed} "
            f"reconciled={self.reconciled} left_triggered={len(self.left_triggered)} "
            f"lost={len(self.lost)} duplicates={len(self.duplicates)} "
            f"unexpected={len(self.unexpected)} wrong_order_id={len(self.wrong_order_id)} "
            f"bad_history={len(self.bad_history)}"
        )


# The status each event leaves a row in, for the events that change it.
_STATUS_AFTER = {
    EventKind.CREATED: None,  # the payload says (active or paused)
    EventKind.CLAIMED: Status.TRIGGERED,
    EventKind.PLACED: Status.PLACED,
    EventKind.FAILED: Status.FAILED,
    EventKind.RELEASED: Status.ACTIVE,
    EventKind.CANCELLED: Status.CANCELLED,
    EventKind.EXPIRED: Status.EXPIRED,
    EventKind.PAUSED: Status.PAUSED,
    EventKind.RESUMED: Status.ACTIVE,
}


async def audit(
    store: TriggerStore, orders: list[dict[str, Any]], trigger_ids: Iterable[str]
) -> Audit:
    """Classify each of `trigger_ids` against `orders` (the simulator's book)."""
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        by_tag.setdefault(str(order.get("tag")), []).append(order)
    result = Audit()
    for trigger_id in trigger_ids:
        record = await store.load(trigger_id)
        assert record is not None, f"trigger {trigger_id} vanished"
        history = await store.history(record.trigger.user_id, TriggerId(trigger_id))
        _classify(result, record, history, by_tag)
    return result


def _classify(
    result: Audit,
    record: TriggerRecord,
    history: list[TriggerEvent],
    by_tag: dict[str, list[dict[str, Any]]],
) -> None:
    trigger_id, status = record.id, record.status
    result.triggers += 1
    result.statuses[status.value] += 1
    orders = [order for tag in all_tags(record) for order in by_tag.get(tag, [])]
    side = broker_side(record, orders)
    result.duplicates += [tag for tag, found in side.per_tag.items() if len(found) > 1]
    kinds = [event.kind for event in history]
    own_kinds = [event.kind for event in trigger_events(history)]
    if (
        not _history_matches(kinds, own_kinds, history[0].payload if history else {}, status)
        or kinds.count(EventKind.ORDER_SENT) != record.attempts
        or basket_problem(record, history)
    ):
        result.bad_history.append(trigger_id)
    # A placed (or a basket's failed) trigger's orders: each where its row says, once.
    result.unexpected += side.unexpected
    result.wrong_order_id += [trigger_id] if side.wrong_id else []
    if side.missing or side.unsent:
        result.lost.append(trigger_id)  # an order the row says placed (or never settled)
    if status is Status.PLACED:
        result.placed += 1
        if any(e.kind is EventKind.PLACED and e.payload.get("reconciled") for e in history):
            result.reconciled += 1
        return
    if status is Status.TRIGGERED:
        result.left_triggered.append(trigger_id)
    elif status is Status.FAILED:
        result.failed += 1
        if not record.error_message:
            result.lost.append(trigger_id)  # failed without saying why
    elif EventKind.CLAIMED in own_kinds and EventKind.RELEASED not in own_kinds:
        result.lost.append(trigger_id)  # claimed, then neither placed, failed nor released


def _history_matches(
    kinds: list[EventKind], own: list[EventKind], created: Any, status: Status
) -> bool:
    """The trigger's own events (`own`: a basket's per-order events left out) replay to
    the row's status, with at most one outcome; each claim follows its `fired`, and an
    order placed was sent (`order_sent`, a basket order's included) before it was placed.

    (`attempts` must equal the `order_sent` events: checked by the caller, which has the row.)
    """
    if not own or own[0] is not EventKind.CREATED:
        return False
    if own.count(EventKind.PLACED) + own.count(EventKind.FAILED) > 1:
        return False
    for i, kind in enumerate(kinds):
        if kind is EventKind.CLAIMED and kinds[i - 1] is not EventKind.FIRED:
            return False
        if kind is EventKind.PLACED and EventKind.ORDER_SENT not in kinds[:i]:
            return False
    replayed = Status(created.get("status", Status.ACTIVE.value))
    for kind in own[1:]:
        after = _STATUS_AFTER.get(kind)
        if after is not None:
            replayed = after
    return replayed is status
