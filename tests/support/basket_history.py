"""What the audits share about baskets (a leg of more than one order): their tags, the
per-order events of their history, and what the broker must hold for each order.

A basket's orders write their own events (`order_sent`, `retry`, `reconciled`,
`placed`, `failed`), each with the order's `position` and `tag` in its payload;
they change no status of the trigger. Only the final `placed` or `failed`
without `position` (`finish`) is the trigger's outcome. A `released` with a
`position` (the session expired on that order) does give the claim back. A
one-order leg, v1's or v2's, writes no per-order event: its history is v1's.

Used by `history_audit` (crash and race tests) and `chaos_oracle` (the chaos
campaign), so both judge a basket by the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hmt.core.events import EventKind, TriggerEvent
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.records import TriggerRecord

_OUTCOMES = (EventKind.PLACED, EventKind.FAILED)
_ROW_STATUS = {EventKind.PLACED: "placed", EventKind.FAILED: "failed"}


def size(trigger: Trigger, leg: Leg) -> int:
    """How many orders `leg` places."""
    return len(trigger.orders(leg))


def has_basket(trigger: Trigger) -> bool:
    return any(size(trigger, leg) > 1 for leg in trigger.legs)


def leg_tags(record: TriggerRecord, leg: Leg) -> list[str]:
    """The tags of `leg`'s orders by position (position 0's is v1's tag)."""
    return [broker_tag(record.id, leg, p) for p in range(size(record.trigger, leg))]


def all_tags(record: TriggerRecord) -> list[str]:
    """Every order tag the trigger may use: each leg's, each position's."""
    return [tag for leg in record.trigger.legs for tag in leg_tags(record, leg)]


def is_order_event(event: TriggerEvent) -> bool:
    """A basket order's own event: a note for the trigger (its `position` says whose)."""
    return "position" in event.payload and event.kind is not EventKind.RELEASED


def trigger_events(history: Sequence[TriggerEvent]) -> list[TriggerEvent]:
    """The events that speak for the trigger itself (its status, its outcome)."""
    return [event for event in history if not is_order_event(event)]


@dataclass
class _Epoch:
    """One claim's life: the fired leg and each position's events since the claim."""

    leg: Leg | None = None
    orders: dict[int, list[EventKind]] = field(default_factory=dict)

    def outcome(self, position: int) -> EventKind | None:
        return next((k for k in self.orders.get(position, []) if k in _OUTCOMES), None)


def basket_problem(record: TriggerRecord, history: Sequence[TriggerEvent]) -> str:
    """Why a trigger's per-order history is wrong ('' when it is right).

    Per claim (a release clears the basket's rows, so its next claim starts
    afresh): each event is on a position of the fired leg's basket under that
    position's tag; each position has at most one outcome and nothing after it;
    a position is placed only after its `order_sent`; over the whole history a
    position is placed at most once. The trigger's own `placed` needs every
    position placed, its `failed` every position settled and one failed. The
    basket's rows (`record.orders`) say what the events since the last claim say
    (status and `attempts` per position). A trigger without a basket has no
    per-order event at all.
    """
    trigger = record.trigger
    if not has_basket(trigger):
        if any(is_order_event(e) for e in history):
            return "a per-order event on a trigger without a basket"
        return ""
    epoch = _Epoch()
    placed: Counter[int] = Counter()
    for event in history:
        kind, payload = event.kind, event.payload
        if kind is EventKind.CLAIMED:
            epoch = _Epoch(Leg(int(payload.get("leg", 0) or 0) or 1))
        elif kind is EventKind.RELEASED:
            epoch = _Epoch()
        elif is_order_event(event):
            problem = _order_event(record, epoch, event, placed)
            if problem:
                return problem
        elif kind in _OUTCOMES and epoch.leg is not None and size(trigger, epoch.leg) > 1:
            problem = _basket_outcome(trigger, epoch, kind)
            if problem:
                return problem
    return _rows_problem(record, epoch)


def _order_event(
    record: TriggerRecord, epoch: _Epoch, event: TriggerEvent, placed: Counter[int]
) -> str:
    kind, payload = event.kind, event.payload
    position = payload.get("position")
    if epoch.leg is None:
        return f"`{kind.value}` of position {position} outside a claim"
    count = size(record.trigger, epoch.leg)
    if count == 1:
        return f"`{kind.value}` of position {position} on a one-order leg"
    if not isinstance(position, int) or not 0 <= position < count:
        return f"`{kind.value}` names position {position!r} of a basket of {count}"
    if payload.get("tag") != broker_tag(record.id, epoch.leg, position):
        return f"`{kind.value}` of position {position} under tag {payload.get('tag')!r}"
    seen = epoch.orders.setdefault(position, [])
    if epoch.outcome(position) is not None:
        return f"`{kind.value}` of position {position} after its outcome"
    if kind is EventKind.PLACED:
        if EventKind.ORDER_SENT not in seen:
            return f"position {position} placed, yet no `order_sent` of it before"
        placed[position] += 1
        if placed[position] > 1:
            return f"position {position} placed twice"
    seen.append(kind)
    return ""


def _basket_outcome(trigger: Trigger, epoch: _Epoch, kind: EventKind) -> str:
    assert epoch.leg is not None
    outcomes = [epoch.outcome(p) for p in range(size(trigger, epoch.leg))]
    if any(o is None for o in outcomes):
        return f"the basket `{kind.value}` with positions unsettled: {outcomes}"
    if kind is EventKind.PLACED and EventKind.FAILED in outcomes:
        return "the basket `placed` with a failed order"
    if kind is EventKind.FAILED and EventKind.FAILED not in outcomes:
        return "the basket `failed` with every order placed"
    return ""


def _rows_problem(record: TriggerRecord, epoch: _Epoch) -> str:
    """The stored rows of the basket against its events since the last claim."""
    rows = {(state.leg, state.position): state for state in record.orders}
    expected: dict[tuple[Leg, int], tuple[str, int]] = {}
    if epoch.leg is not None:
        for position, kinds in epoch.orders.items():
            outcome = epoch.outcome(position)
            status = "pending" if outcome is None else _ROW_STATUS[outcome]
            expected[(epoch.leg, position)] = (status, kinds.count(EventKind.ORDER_SENT))
    actual = {key: (state.status, state.attempts) for key, state in rows.items()}
    if actual != expected:
        return f"basket rows {sorted(actual.items())} != events {sorted(expected.items())}"
    return ""


@dataclass
class BrokerSide:
    """What the broker holds for one trigger's orders, against its rows."""

    per_tag: dict[str, list[Mapping[str, Any]]]
    missing: list[str] = field(default_factory=list)  # settled placed, nothing at the broker
    wrong_id: list[str] = field(default_factory=list)  # the row's order id is not the broker's
    unexpected: list[str] = field(default_factory=list)  # an order nothing accounts for
    unsent: list[str] = field(default_factory=list)  # an order of a finished leg never settled


def broker_side(record: TriggerRecord, orders: Sequence[Mapping[str, Any]]) -> BrokerSide:
    """Each order of the trigger judged on its own, by its tag.

    A `placed` or `failed` trigger's fired leg: each position `placed` must have
    its order at the broker under its tag, with the row's order id (a one-order
    leg's row is the trigger's own); a position `failed` (with its reason) must
    have none; a position neither is `unsent`. Any order under a tag of a leg
    that did not fire, or of a trigger with no outcome, is `unexpected`. (More
    than one order under a tag is for the caller to count: `per_tag`.)
    """
    by_tag: dict[str, list[Mapping[str, Any]]] = {}
    for order in orders:
        by_tag.setdefault(str(order.get("tag")), []).append(order)
    side = BrokerSide({tag: by_tag.get(tag, []) for tag in all_tags(record)})
    settled = _settled(record, side)
    side.missing += [tag for tag in settled if tag not in side.per_tag]  # not even its own tag
    for tag, found in side.per_tag.items():
        status, order_id = settled.get(tag, ("", None))
        if status == "placed":
            if not found:
                side.missing.append(tag)
            elif found[0]["order_id"] != order_id:
                side.wrong_id.append(tag)
        elif found and tag not in side.unsent:
            side.unexpected.append(tag)
    return side


def _settled(record: TriggerRecord, side: BrokerSide) -> dict[str, tuple[str, str | None]]:
    """Tag -> (status, order id) of each settled order of a finished trigger's fired leg;
    its orders neither placed nor failed with a reason go to `side.unsent`."""
    if record.status not in (Status.PLACED, Status.FAILED):
        return {}
    leg = record.triggered_leg
    if leg is None or size(record.trigger, leg) == 1:
        return {record.broker_tag or "": (record.status.value, record.order_id)}
    settled: dict[str, tuple[str, str | None]] = {}
    states = {s.position: s for s in record.orders if s.leg is leg}
    for position, tag in enumerate(leg_tags(record, leg)):
        state = states.get(position)
        if state is None or state.status not in ("placed", "failed"):
            side.unsent.append(tag)
        elif state.status == "failed" and not state.error_message:
            side.unsent.append(tag)  # failed without saying why
        else:
            settled[tag] = (state.status, state.order_id)
    first = next((i for s, i in settled.values() if s == "placed"), None)
    if record.order_id != first:
        side.wrong_id.append(f"trigger order_id {record.order_id} != first placed {first}")
    return settled
