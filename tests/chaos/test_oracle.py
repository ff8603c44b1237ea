"""The chaos oracle on hand-made rows, histories and order books: it sees every fault class."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hmt.core.events import EventKind, TriggerEvent
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, Side
from hmt.kite.tags import broker_tag
from hmt.store.records import TriggerRecord
from tests.support.chaos_oracle import judge, judge_all, orphans, tags_of
from tests.support.chaos_schedule import generate
from tests.support.factories import make_oco, make_trigger

AT = datetime(2026, 1, 1, tzinfo=UTC)


def placed(oco: bool = False, leg: Leg = Leg.FIRST) -> TriggerRecord:
    trigger = make_oco(Side.SELL, stop=90_000, target=110_000) if oco else make_trigger()
    trigger = replace(trigger, status=Status.PLACED)
    return TriggerRecord(
        trigger,
        AT,
        AT,
        triggered_leg=leg,
        broker_tag=broker_tag(trigger.id, leg),
        order_id="1",
        attempts=1,
    )


def events(record: TriggerRecord, *kinds: EventKind, **placed_payload: Any) -> list[TriggerEvent]:
    out = [TriggerEvent(record.id, EventKind.CREATED, AT, {"status": "active"})]
    for kind in kinds:
        payload = placed_payload if kind is EventKind.PLACED else {}
        out.append(TriggerEvent(record.id, kind, AT, payload))
    return out


FIRED = (EventKind.FIRED, EventKind.CLAIMED, EventKind.ORDER_SENT, EventKind.PLACED)


def order(record: TriggerRecord, order_id: str = "1", leg: Leg = Leg.FIRST) -> dict[str, Any]:
    return {"order_id": order_id, "tag": broker_tag(record.id, leg)}


def test_one_order_under_the_rows_tag_is_ok() -> None:
    """Placed, one order with the row's id, a full history: ok."""
    record = placed()
    assert judge(record, events(record, *FIRED), [order(record)]).classes == ["ok"]


def test_a_looked_up_order_is_indeterminate_resolved() -> None:
    """Placed by finding the tag after an ambiguous answer: a good class of its own."""
    record = placed()
    judged = judge(record, events(record, *FIRED, reconciled=True), [order(record)])
    assert judged.classes == ["indeterminate-resolved"]


def test_two_orders_under_one_tag_are_duplicated() -> None:
    """A tag with two orders at the broker is a duplicate."""
    record = placed()
    judged = judge(record, events(record, *FIRED), [order(record), order(record, "2")])
    assert "duplicated" in judged.classes


def test_both_legs_of_an_oco_ordered_is_oco_double() -> None:
    """An oco with an order on each leg."""
    record = placed(oco=True)
    orders = [order(record), order(record, "2", Leg.SECOND)]
    assert "oco-double" in judge(record, events(record, *FIRED), orders).classes


def test_an_order_for_a_cancelled_trigger_is_unexpected() -> None:
    """Cancelled, yet the broker holds an order under its tag."""
    record = placed()
    record = replace(record, trigger=replace(record.trigger, status=Status.CANCELLED), attempts=0)
    judged = judge(record, events(record, EventKind.CANCELLED), [order(record)])
    assert judged.classes == ["unexpected"]


def test_placed_without_an_order_and_armed_after_the_push_are_lost() -> None:
    """The row says placed but the broker has nothing; or the trigger never fired."""
    record = placed()
    assert judge(record, events(record, *FIRED), []).classes == ["lost"]
    armed = replace(record, trigger=replace(record.trigger, status=Status.ACTIVE), attempts=0)
    assert judge(armed, events(armed), []).classes == ["lost"]


def test_a_wrong_order_id_is_unexpected_and_a_bad_history_is_reported() -> None:
    """The row's order id must be the broker's; events must replay through TRANSITIONS."""
    record = placed()
    assert "unexpected" in judge(record, events(record, *FIRED), [order(record, "9")]).classes
    skipped = events(record, EventKind.PLACED)  # placed without a claim
    assert judge(record, skipped, [order(record)]).classes == ["bad-history"]


def test_a_history_must_count_every_request_it_sent() -> None:
    """A claim needs its `fired`, a placement an earlier `order_sent`, and `attempts`
    must equal the `order_sent` events."""
    record = placed()
    no_fired = events(record, EventKind.CLAIMED, EventKind.ORDER_SENT, EventKind.PLACED)
    unsent = events(record, EventKind.FIRED, EventKind.CLAIMED, EventKind.PLACED)
    for history in (no_fired, unsent):
        assert judge(record, history, [order(record)]).classes == ["bad-history"]
    resent = events(record, *FIRED[:-1], EventKind.RETRY, EventKind.ORDER_SENT, EventKind.PLACED)
    assert judge(record, resent, [order(record)]).classes == ["bad-history"]  # attempts=1
    assert judge(replace(record, attempts=2), resent, [order(record)]).classes == [
        "indeterminate-resolved"
    ]


def test_orders_nobody_claimed_are_orphans() -> None:
    """An order whose tag is no trigger's is counted against the run."""
    record = placed()
    stray = {"order_id": "7", "tag": "HMTAAAAAAAAAAAAAAAA1"}
    assert orphans([order(record), stray], set(tags_of(record))) == ["7"]
    verdict = judge_all([(record, events(record, *FIRED))], [order(record)])
    assert verdict.valid


def test_a_schedule_depends_only_on_its_seed() -> None:
    """Replaying a seed replays the steps; SQLite schedules never kill a server connection."""
    assert generate(42, "postgresql") == generate(42, "postgresql")
    assert generate(42, "postgresql") != generate(43, "postgresql")
    for seed in range(50):
        assert all(step.kind != "db_kill" for step in generate(seed, "sqlite").steps)


def test_a_claim_lost_to_a_rollback_and_settled_from_the_book_is_rollback_resolved() -> None:
    """Re-armed by a rollback, then claimed and placed again from the order book: good."""
    record = placed()
    history = events(record, *FIRED, reconciled=True)
    lost = frozenset({broker_tag(record.id, Leg.FIRST)})
    assert judge(record, history, [order(record)], lost).classes == ["rollback-resolved"]
    assert judge(record, history, [order(record)]).classes == ["indeterminate-resolved"]
    # Settled from the book, the history still owes its claim and its request.
    unclaimed = events(record, EventKind.PLACED, reconciled=True)
    assert judge(record, unclaimed, [order(record)], lost).classes == ["bad-history"]


def test_a_rolled_back_trigger_that_fired_again_is_duplicated() -> None:
    """Re-armed by a rollback and fired again: the broker holds two orders under one tag."""
    record = placed()
    lost = frozenset({broker_tag(record.id, Leg.FIRST)})
    orders = [order(record, "1"), order(record, "2")]
    judged = judge(replace(record, order_id="2"), events(record, *FIRED), orders, lost)
    assert "duplicated" in judged.classes
    oco = placed(oco=True, leg=Leg.SECOND)
    both = [order(oco, "1"), order(oco, "2", Leg.SECOND)]
    lost_first = frozenset({broker_tag(oco.id, Leg.FIRST)})
    assert "oco-double" in judge(oco, events(oco, *FIRED), both, lost_first).classes


def test_erased_triggers_are_judged_on_the_brokers_side_only() -> None:
    """A row the rollback removed may have one order per tag, and one leg of an oco."""
    record = placed()
    oco = placed(oco=True)
    verdict = judge_all([], [order(record), order(oco)], erased=[record, oco])
    assert verdict.valid
    assert verdict.counts["erased"] == 2
    doubled = judge_all([], [order(record), order(record, "2")], erased=[record])
    assert not doubled.valid
    both = judge_all([], [order(oco), order(oco, "2", Leg.SECOND)], erased=[oco])
    assert both.counts["oco-double"] == 1


def test_a_lost_commit_schedule_snapshots_then_crosses_then_rolls_back() -> None:
    """With the fault asked for, every schedule snapshots, crosses and rolls back once, in order."""
    for seed in range(50):
        kinds = [step.kind for step in generate(seed, "sqlite", rollback_share=1.0).steps]
        assert kinds.count("snapshot") == kinds.count("rollback") == 1
        at = kinds.index("snapshot")
        assert kinds[at + 1] in {"tick", "tick_at"}
        assert kinds.index("rollback") > at + 2
        never = generate(seed, "postgresql", rollback_share=0.0).steps
        assert all(step.kind not in {"snapshot", "rollback"} for step in never)
