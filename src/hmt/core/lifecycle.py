"""Trigger statuses and the one table of allowed transitions.

Nothing else in hmt assigns a status: every change goes through `transition`,
so a pair missing from `TRANSITIONS` is refused everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from hmt.core.errors import IllegalTransition
from hmt.core.events import EventKind


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    TRIGGERED = "triggered"  # claimed: an order is in flight
    PLACED = "placed"  # the broker accepted the order; order_id is set
    FAILED = "failed"  # error_message says why
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # A bracket's own statuses (docs/triggers.md, "Brackets"); its entry and exits are
    # triggers with the statuses above.
    OPEN = "open"  # waiting for the entry's order to fill
    ARMED = "armed"  # exits armed for what has filled; the entry may fill more
    FILLED = "filled"  # the entry's order is final; exits armed for all it filled


_A, _P, _T = Status.ACTIVE, Status.PAUSED, Status.TRIGGERED
_O, _R = Status.OPEN, Status.ARMED

TRANSITIONS: Mapping[tuple[Status, EventKind], Status] = MappingProxyType(
    {
        (_A, EventKind.UPDATED): _A,
        (_P, EventKind.UPDATED): _P,
        (_A, EventKind.PAUSED): _P,
        (_P, EventKind.RESUMED): _A,
        # The durable claim: the only way towards an order.
        (_A, EventKind.CLAIMED): _T,
        (_T, EventKind.ORDER_SENT): _T,
        (_T, EventKind.RETRY): _T,
        (_T, EventKind.PLACED): Status.PLACED,
        (_T, EventKind.FAILED): Status.FAILED,
        # The broker refused the session before any order could exist (an
        # expired token): the claim is given back and the trigger waits for a
        # new token, armed, instead of failing for the trader's login lapsing.
        (_T, EventKind.RELEASED): _A,
        (_A, EventKind.CANCELLED): Status.CANCELLED,
        (_P, EventKind.CANCELLED): Status.CANCELLED,
        (_A, EventKind.EXPIRED): Status.EXPIRED,
        (_P, EventKind.EXPIRED): Status.EXPIRED,
        # Brackets. A fill arms the exits (the first) or grows them (the next ones);
        # the entry's order ending with fills closes it; ending with none (rejected,
        # cancelled), or the entry trigger failing, cancelled or expired, ends it so.
        (_O, EventKind.FILLED): _R,
        (_R, EventKind.FILLED): _R,
        (_R, EventKind.ENTRY_CLOSED): Status.FILLED,
        (_O, EventKind.FAILED): Status.FAILED,
        (_O, EventKind.CANCELLED): Status.CANCELLED,
        (_O, EventKind.EXPIRED): Status.EXPIRED,
    }
)

INITIAL_STATUSES: frozenset[Status] = frozenset({Status.ACTIVE, Status.PAUSED})
TERMINAL_STATUSES: frozenset[Status] = frozenset(
    {Status.PLACED, Status.FAILED, Status.CANCELLED, Status.EXPIRED, Status.FILLED}
)
# Which statuses a trigger row and a bracket row may hold (their tables' CHECKs).
BRACKET_STATUSES: frozenset[Status] = frozenset(
    {Status.OPEN, Status.ARMED, Status.FILLED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
)
TRIGGER_STATUSES: tuple[Status, ...] = tuple(
    s for s in Status if s not in {Status.OPEN, Status.ARMED, Status.FILLED}
)
# The statuses a user may still edit, pause, resume or cancel.
EDITABLE_STATUSES: frozenset[Status] = frozenset({Status.ACTIVE, Status.PAUSED})


def transition(status: Status, event: EventKind) -> Status:
    """The status after `event`, or `IllegalTransition` if the table has no such pair."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(status.value, event.value) from None


def allowed(status: Status, event: EventKind) -> bool:
    return (status, event) in TRANSITIONS
