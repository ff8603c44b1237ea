"""The bracket judge catches each fault class on hand-made brackets and broker books."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hmt.core.brackets import Exits, exit_trigger
from hmt.core.lifecycle import Status
from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.store.brackets import BracketRecord
from hmt.store.records import TriggerRecord
from tests.support.bracket_history import filled_at_broker, judge_bracket
from tests.support.factories import make_trigger

NOW = datetime(2026, 12, 1, tzinfo=UTC)
EXITS = Exits(target=170_000, stop=150_000)
ENTRY = make_trigger(quantity=10)


def bracket(filled: int, armed: int, exits: list[int], status: Status) -> BracketRecord:
    records = tuple(
        TriggerRecord(exit_trigger(ENTRY, EXITS, g + 1, q), NOW, NOW) for g, q in enumerate(exits)
    )
    return BracketRecord(
        id=ENTRY.id,
        user_id="alice",
        status=status,
        exits=EXITS,
        filled=filled,
        armed=armed,
        generation=len(exits),
        entry_status="COMPLETE",
        error_message=None,
        created_at=NOW,
        updated_at=NOW,
        entry=TriggerRecord(ENTRY, NOW, NOW),
        exit_records=records,
    )


def book(filled: int) -> list[dict[str, Any]]:
    return [{"order_id": "1", "tag": broker_tag(ENTRY.id, Leg.FIRST, 0), "filled_quantity": filled}]


def test_a_sound_bracket_has_no_fault() -> None:
    assert filled_at_broker(bracket(10, 10, [10], Status.FILLED), book(10)) == 10
    assert judge_bracket(bracket(10, 10, [10], Status.FILLED), book(10)) == []
    assert judge_bracket(bracket(0, 0, [], Status.OPEN), []) == []


def test_each_fault_class_is_caught() -> None:
    assert judge_bracket(bracket(10, 10, [5, 5], Status.FILLED), book(10)) == [
        "bracket-armed-twice"
    ]
    assert "bracket-over" in judge_bracket(bracket(10, 10, [12], Status.FILLED), book(10))
    assert judge_bracket(bracket(4, 4, [4], Status.ARMED), book(10)) == ["bracket-unarmed"]
    assert judge_bracket(bracket(0, 0, [], Status.OPEN), book(3)) == ["bracket-unarmed"]
