"""What happened to a trigger: the kinds of entry in the append-only history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hmt.core.types import TriggerId


class EventKind(StrEnum):
    """Past-tense names; the status-changing ones are keys of `lifecycle.TRANSITIONS`."""

    CREATED = "created"
    UPDATED = "updated"
    PAUSED = "paused"
    RESUMED = "resumed"
    FIRED = "fired"
    CLAIMED = "claimed"
    ORDER_SENT = "order_sent"
    RETRY = "retry"
    PLACED = "placed"
    FAILED = "failed"
    RELEASED = "released"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RECONCILED = "reconciled"
    # v2: a leg's price was crossed while the engine was blind (payload: policy
    # fire|skip, the day range before and after, the blind spot). A note, not a
    # transition: with `fire` the claim's own events follow.
    MISSED_TOUCH = "missed_touch"
    # Brackets (their own history, `hmt_bracket_events`): the entry's order filled
    # more (payload: filled, armed, the exit armed or grown), and it ended with fills.
    FILLED = "filled"
    ENTRY_CLOSED = "entry_closed"


# The kinds a trigger's history holds (its table's CHECK): all but the bracket-only ones.
BRACKET_ONLY_KINDS = frozenset({EventKind.FILLED, EventKind.ENTRY_CLOSED})
TRIGGER_EVENT_KINDS: tuple[EventKind, ...] = tuple(
    k for k in EventKind if k not in BRACKET_ONLY_KINDS
)


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """One entry of a trigger's history; `at` is given by the caller, never read here."""

    trigger_id: TriggerId
    kind: EventKind
    at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
