"""The transition table: every listed change allowed, every other refused."""

from __future__ import annotations

import itertools

import pytest

from hmt.core.errors import IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Status,
    allowed,
    transition,
)

S, E = Status, EventKind
EXPECTED = {
    (S.ACTIVE, E.UPDATED): S.ACTIVE,
    (S.PAUSED, E.UPDATED): S.PAUSED,
    (S.ACTIVE, E.PAUSED): S.PAUSED,
    (S.PAUSED, E.RESUMED): S.ACTIVE,
    (S.ACTIVE, E.CLAIMED): S.TRIGGERED,
    (S.TRIGGERED, E.ORDER_SENT): S.TRIGGERED,
    (S.TRIGGERED, E.RETRY): S.TRIGGERED,
    (S.TRIGGERED, E.PLACED): S.PLACED,
    (S.TRIGGERED, E.FAILED): S.FAILED,
    (S.TRIGGERED, E.RELEASED): S.ACTIVE,
    (S.ACTIVE, E.CANCELLED): S.CANCELLED,
    (S.PAUSED, E.CANCELLED): S.CANCELLED,
    (S.ACTIVE, E.EXPIRED): S.EXPIRED,
    (S.PAUSED, E.EXPIRED): S.EXPIRED,
    # Brackets (issue 14): fills arm, then grow the exits; the entry's order ends.
    (S.OPEN, E.FILLED): S.ARMED,
    (S.ARMED, E.FILLED): S.ARMED,
    (S.ARMED, E.ENTRY_CLOSED): S.FILLED,
    (S.OPEN, E.FAILED): S.FAILED,
    (S.OPEN, E.CANCELLED): S.CANCELLED,
    (S.OPEN, E.EXPIRED): S.EXPIRED,
}


def test_table_is_exactly_the_designed_one() -> None:
    """The table holds the designed pairs and nothing else."""
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("pair", "after"), EXPECTED.items())
def test_legal_transitions_apply(pair: tuple[Status, EventKind], after: Status) -> None:
    """Each legal pair gives its status."""
    assert transition(*pair) is after
    assert allowed(*pair)


ILLEGAL = [p for p in itertools.product(Status, EventKind) if p not in EXPECTED]


@pytest.mark.parametrize("pair", ILLEGAL)
def test_illegal_transitions_raise(pair: tuple[Status, EventKind]) -> None:
    """Every pair outside the table raises, naming status and event."""
    assert not allowed(*pair)
    with pytest.raises(IllegalTransition, match=f"{pair[1].value!r}.*{pair[0].value!r}"):
        transition(*pair)


def test_terminal_statuses_have_no_way_out() -> None:
    """No event leads out of placed, failed, cancelled or expired."""
    assert not [pair for pair in TRANSITIONS if pair[0] in TERMINAL_STATUSES]


def test_a_bracket_fails_only_with_nothing_filled() -> None:
    """Once armed, a bracket's exits are armed: it can only close, never fail or cancel."""
    out_of_armed = {p[1] for p in TRANSITIONS if p[0] is S.ARMED}
    assert out_of_armed == {E.FILLED, E.ENTRY_CLOSED}


def test_only_a_claim_leads_to_an_order() -> None:
    """The only way into `triggered` is a claim from `active`: no order without a claim."""
    into_triggered = [p for p, s in TRANSITIONS.items() if s is S.TRIGGERED and p[0] is not s]
    assert into_triggered == [(S.ACTIVE, E.CLAIMED)]
