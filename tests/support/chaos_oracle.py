"""The chaos campaign's judge: the database's story against the simulator's order book.

Each trigger of a schedule gets one Jepsen-style class, from what the broker
holds for its legs' tags and what its history says:

- `ok`: a trigger that had to fire is `placed` with exactly one order per order
  of its fired leg (a basket's each under its own tag), whose id the row (a
  basket order's own row) carries; or one that could not fire (cancelled) has no
  order;
- `indeterminate-resolved`: `ok`, after an answer the engine never got (a
  timeout, a cut socket, a 5xx) was settled by looking the tag up;
- `rollback-resolved`: `ok`, for a trigger whose claim a database rollback lost
  (RELIABILITY 17: the broker held its order, the restored row was armed again)
  and which the engine settled from the broker's order book, not by a second order;
- `erased`: a trigger the rollback removed altogether (created after the
  snapshot): the engine cannot know it any more, so it is judged only on the
  broker's side: at most one order per tag, at most one leg of an oco;
- `duplicated`: a tag (any position of any leg) with more than one order at the
  broker;
- `oco-double`: both legs of an oco have an order;
- `unexpected`: an order for a trigger whose row is not `placed` with it (wrong
  tag, wrong order id, cancelled, failed or still armed);
- `lost`: a trigger that had to fire and did not end `placed` with its orders
  (left armed, left `triggered`, `failed`, `placed` with nothing at the broker
  under one of its fired leg's tags, or an order of the fired leg that never
  ended placed or failed with a reason);
- `bad-history`: the events do not replay, through `TRANSITIONS`, to the row; or
  a claim without its `fired`, a `placed` with no `order_sent` before it, or
  `attempts` different from the number of `order_sent` events; for a basket,
  its per-order events break `basket_history.basket_problem`'s rules (one
  outcome per position per claim, each placed once, after its `order_sent`;
  the trigger's outcome only once all are settled; rows as the events say).

A basket's per-order events (payload with `position`) are notes for the
trigger's status: only its final `placed`/`failed` without `position` is the
trigger's outcome.

After a rollback a row may legitimately be back at `active` with its order
already at the broker (the claim and the request went with the rollback): it
must then be settled from the order book, its history written again as
`fired`, `claimed`, `order_sent`, `reconciled`, `placed`, so every rule below
still holds; an order under its tag it did not account for is a duplicate.

"Had to fire" is decided by the runner, not guessed here: after healing it
pushes a price through every leg still armed while the engine is healthy, so
every trigger not cancelled must end `placed`. Orders whose tag belongs to no
trigger at all are `orphans` (unexpected, counted on their own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hmt.core.events import EventKind, TriggerEvent
from hmt.core.lifecycle import TRANSITIONS, Status
from hmt.core.types import TriggerType
from hmt.store.records import TriggerRecord
from tests.support.basket_history import (
    all_tags,
    basket_problem,
    broker_side,
    leg_tags,
    trigger_events,
)

CLASSES = (
    "ok",
    "indeterminate-resolved",
    "rollback-resolved",
    "erased",
    "duplicated",
    "oco-double",
    "unexpected",
    "lost",
    "bad-history",
    # Brackets (issue 14; tests/support/bracket_history.py): exits armed twice for one
    # fill, exits above the fill, fills left without exits.
    "bracket-armed-twice",
    "bracket-over",
    "bracket-unarmed",
)
# The classes that fail a run; the first four are the only good ones.
FAULTS = CLASSES[4:]
# Event kinds that change a row's status (keys of TRANSITIONS); others are notes.
_STATUS_KINDS = frozenset(kind for _, kind in TRANSITIONS)


@dataclass
class Judged:
    """One trigger's verdict and why."""

    trigger_id: str
    classes: list[str]
    status: str
    orders: int
    why: str = ""


@dataclass
class Verdict:
    """Counts per class over the judged triggers, plus broker orders nobody claimed."""

    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    judged: list[Judged] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # order ids whose tag is no trigger's

    @property
    def valid(self) -> bool:
        return not self.orphans and not any(self.counts[c] for c in FAULTS)

    def failures(self) -> list[Judged]:
        return [j for j in self.judged if any(c in FAULTS for c in j.classes)]

    def merge(self, other: Verdict) -> None:
        self.counts.update(other.counts)
        self.statuses.update(other.statuses)
        self.judged += other.judged
        self.orphans += other.orphans


def tags_of(record: TriggerRecord) -> list[str]:
    """Every tag of the trigger's orders: each leg's, each basket position's."""
    return all_tags(record)


def orphans(orders: Iterable[Mapping[str, Any]], known_tags: set[str]) -> list[str]:
    """Order ids at the broker whose tag is no trigger's: an order nobody claimed."""
    return [str(o["order_id"]) for o in orders if str(o.get("tag")) not in known_tags]


def _by_tag(orders: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_tag: dict[str, list[Mapping[str, Any]]] = {}
    for order in orders:
        by_tag.setdefault(str(order.get("tag")), []).append(order)
    return by_tag


def _broker_side(
    record: TriggerRecord, orders: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[str], list[str]]:
    """The orders under each of the record's tags, and the duplicate/oco-double findings."""
    by_tag = _by_tag(orders)
    found = {tag: by_tag.get(tag, []) for tag in tags_of(record)}
    classes: list[str] = []
    why: list[str] = []
    doubled = {tag: len(v) for tag, v in found.items() if len(v) > 1}
    if doubled:
        classes.append("duplicated")
        why.append(f"orders per tag {doubled}")
    ordered = [any(found[tag] for tag in leg_tags(record, leg)) for leg in record.trigger.legs]
    if record.trigger.trigger_type is TriggerType.OCO and all(ordered):
        classes.append("oco-double")
        why.append("both legs ordered")
    return found, classes, why


def judge(
    record: TriggerRecord,
    history: Sequence[TriggerEvent],
    orders: Sequence[Mapping[str, Any]],
    lost_claims: frozenset[str] = frozenset(),
) -> Judged:
    """Classify one trigger after the final price push and quiescence.

    `lost_claims` holds the tags whose order the broker had when a rollback
    restored the database without the claim (RELIABILITY 17).
    """
    found, classes, why = _broker_side(record, orders)
    total = sum(len(v) for v in found.values())
    rolled_back = any(tag in lost_claims for tag in found)
    status = record.status
    side = broker_side(record, orders)
    if side.missing:
        classes.append("lost")
        why.append(f"`{status.value}`, but the broker has no order under {side.missing}")
    if side.unsent:
        classes.append("lost")
        why.append(f"orders of the fired leg neither placed nor failed with a reason {side.unsent}")
    if side.wrong_id:
        classes.append("unexpected")
        why.append(f"the row's order id is not the broker's {side.wrong_id}")
    if side.unexpected:
        classes.append("unexpected")
        why.append(f"orders no row accounts for, for a `{status.value}` trigger {side.unexpected}")
    if status not in (Status.PLACED, Status.CANCELLED):
        # Not cancelled: the final push went through it while the engine was up.
        classes.append("lost")
        why.append(f"ended `{status.value}` ({record.error_message or 'no reason'})")
    problem = history_problem(record, history)
    if problem:
        classes.append("bad-history")
        why.append(problem)
    if not classes:
        ambiguous = any(
            e.kind is EventKind.PLACED and e.payload.get("reconciled") for e in history
        ) or any(e.kind is EventKind.RETRY for e in history)
        if rolled_back:
            classes.append("rollback-resolved")
        else:
            classes.append("indeterminate-resolved" if ambiguous else "ok")
    return Judged(record.id, classes, status.value, total, "; ".join(why))


def judge_erased(record: TriggerRecord, orders: Sequence[Mapping[str, Any]]) -> Judged:
    """A trigger the rollback removed (its last state before it): only the broker's side."""
    found, classes, why = _broker_side(record, orders)
    return Judged(
        record.id,
        classes or ["erased"],
        "erased",
        sum(len(v) for v in found.values()),
        "; ".join(why),
    )


def history_problem(record: TriggerRecord, history: Sequence[TriggerEvent]) -> str:
    """Why the history does not replay to the row's status ('' when it does)."""
    kinds = [event.kind for event in history]
    # A basket's per-order events are notes: the trigger's own events replay.
    own = [event.kind for event in trigger_events(history)]
    if not own or own[0] is not EventKind.CREATED:
        return f"history does not start with `created`: {[k.value for k in kinds]}"
    status = Status(history[0].payload.get("status", Status.ACTIVE.value))
    for kind in own[1:]:
        if kind is EventKind.CREATED:
            return "a second `created`"
        if kind not in _STATUS_KINDS:
            continue  # a note (fired, reconciled): changes no status
        after = TRANSITIONS.get((status, kind))
        if after is None:
            return f"`{kind.value}` is not allowed from `{status.value}`"
        status = after
    if status is not record.status:
        return f"events replay to `{status.value}`, the row says `{record.status.value}`"
    if own.count(EventKind.PLACED) + own.count(EventKind.FAILED) > 1:
        return "more than one outcome"
    if record.status is Status.PLACED and EventKind.CLAIMED not in kinds:
        return "placed without a claim"
    return _requests_problem(record, kinds) or basket_problem(record, history)


def _requests_problem(record: TriggerRecord, kinds: Sequence[EventKind]) -> str:
    """Each claim follows its `fired`; every request is one `order_sent` and one attempt."""
    for i, kind in enumerate(kinds):
        if kind is EventKind.CLAIMED and kinds[i - 1] is not EventKind.FIRED:
            return "a `claimed` without its `fired`"
        if kind is EventKind.PLACED and EventKind.ORDER_SENT not in kinds[:i]:
            return "placed, yet no `order_sent` before it"
    if kinds.count(EventKind.ORDER_SENT) != record.attempts:
        return (
            f"attempts={record.attempts} but {kinds.count(EventKind.ORDER_SENT)} `order_sent` "
            "events: every request is one of each"
        )
    return ""


def judge_all(
    records: Iterable[tuple[TriggerRecord, Sequence[TriggerEvent]]],
    orders: Sequence[Mapping[str, Any]],
    *,
    lost_claims: frozenset[str] = frozenset(),
    erased: Iterable[TriggerRecord] = (),
) -> Verdict:
    """Every trigger's class, counted (and those a rollback erased, on the broker's side)."""
    verdict = Verdict()
    judged_all = [judge(record, history, orders, lost_claims) for record, history in records]
    judged_all += [judge_erased(record, orders) for record in erased]
    for judged in judged_all:
        verdict.judged.append(judged)
        verdict.statuses[judged.status] += 1
        verdict.counts.update(judged.classes)
    return verdict
