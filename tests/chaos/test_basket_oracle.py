"""The chaos oracle and the history audit on hand-made baskets: judged per order.

A basket's orders write their own events (payload with `position` and `tag`)
and rows; only the final `placed`/`failed` without `position` is the trigger's
outcome. Each history here is built as the store writes it, then broken in one
way the oracle must name: duplicated, lost, oco-double, unexpected, bad-history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hmt.core.events import EventKind, TriggerEvent
from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec, Trigger
from hmt.core.types import Direction, Leg, TriggerType
from hmt.kite.tags import broker_tag
from hmt.store.records import OrderState, TriggerRecord
from tests.support.baskets import make_basket
from tests.support.chaos_oracle import judge, judge_all, orphans, tags_of
from tests.support.factories import make_trigger
from tests.support.history_audit import Audit, _classify

AT = datetime(2026, 1, 1, tzinfo=UTC)
SIZE = 3
ORDER_IDS = ["10", "11", "12"]


def oco_basket() -> Trigger:
    """An oco whose legs each place a basket of SIZE orders (stop below, target above)."""
    orders = make_basket(SIZE).leg_specs[0].orders
    return make_trigger(
        quantity=1,
        trigger_type=TriggerType.OCO,
        trigger_price_1=90_000,
        trigger_price_2=110_000,
        leg_specs=(
            LegSpec(direction=Direction.AT_OR_BELOW, orders=orders),
            LegSpec(direction=Direction.AT_OR_ABOVE, orders=orders),
        ),
    )


def tag(trigger: Trigger, position: int, leg: Leg = Leg.FIRST) -> str:
    return broker_tag(trigger.id, leg, position)


def record(
    trigger: Trigger,
    statuses: Iterable[str] = ("placed",) * SIZE,
    leg: Leg = Leg.FIRST,
    status: Status | None = None,
) -> TriggerRecord:
    """A fired basket whose order rows have `statuses` ('' = no row), each sent once."""
    states = tuple(
        OrderState(
            leg,
            p,
            tag(trigger, p, leg),
            s,
            ORDER_IDS[p] if s == "placed" else None,
            "InputException: rejected" if s == "failed" else None,
            1,
        )
        for p, s in enumerate(statuses)
        if s
    )
    placed = [s.order_id for s in states if s.status == "placed"]
    if status is None:
        settled = len(states) == SIZE and all(s.status != "pending" for s in states)
        failed = any(s.status == "failed" for s in states)
        status = (Status.FAILED if failed else Status.PLACED) if settled else Status.TRIGGERED
    return TriggerRecord(
        replace(trigger, status=status),
        AT,
        AT,
        attempts=len(states),
        triggered_leg=leg,
        broker_tag=tag(trigger, 0, leg),
        order_id=placed[0] if placed else None,
        error_message="1 of 3 orders failed: position 1: rejected"
        if "failed" in statuses
        else None,
        orders=states,
    )


def event(trigger: Trigger, kind: EventKind, **payload: Any) -> TriggerEvent:
    return TriggerEvent(trigger.id, kind, AT, payload)


def history(made: TriggerRecord, *, final: bool = True) -> list[TriggerEvent]:
    """The events the store writes for `made`: claim, each order's, then the outcome."""
    trigger, leg = made.trigger, made.triggered_leg or Leg.FIRST
    out = [
        event(trigger, EventKind.CREATED, status="active"),
        event(trigger, EventKind.FIRED, leg=int(leg)),
        event(trigger, EventKind.CLAIMED, leg=int(leg), tag=tag(trigger, 0, leg)),
    ]
    for state in made.orders:
        where = {"position": state.position, "tag": state.tag}
        out.append(event(trigger, EventKind.ORDER_SENT, attempt=1, **where))
        if state.status == "placed":
            out.append(event(trigger, EventKind.PLACED, order_id=state.order_id, **where))
        elif state.status == "failed":
            out.append(event(trigger, EventKind.FAILED, error=state.error_message, **where))
    if final and made.status in (Status.PLACED, Status.FAILED):
        out.append(event(trigger, EventKind(made.status.value), orders=SIZE))
    return out


def book(trigger: Trigger, positions: Iterable[int], leg: Leg = Leg.FIRST) -> list[dict[str, Any]]:
    """The simulator's orders: one per listed position, under its tag, with the row's id."""
    return [{"order_id": ORDER_IDS[p], "tag": tag(trigger, p, leg)} for p in positions]


def audited(made: TriggerRecord, events: list[TriggerEvent], orders: list[dict[str, Any]]) -> Audit:
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        by_tag.setdefault(order["tag"], []).append(order)
    result = Audit()
    _classify(result, made, events, by_tag)
    return result


# --- good baskets -------------------------------------------------------------------------


def test_a_basket_with_each_order_once_under_its_own_tag_is_ok() -> None:
    """Every position placed once under its own tag, the rows and events agreeing: ok,
    though the history holds four `placed` events (three orders' and the trigger's)."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    orders = book(trigger, range(SIZE))
    assert judge(made, history(made), orders).classes == ["ok"]
    assert audited(made, history(made), orders).faults == 0
    assert len(tags_of(made)) == SIZE
    assert orphans(orders, set(tags_of(made))) == []


def test_a_basket_order_found_by_its_tag_is_indeterminate_resolved() -> None:
    """One order placed by looking its tag up after an ambiguous answer: a good class."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    events = history(made)
    at = next(
        i
        for i, e in enumerate(events)
        if e.payload.get("position") == 1 and e.kind is EventKind.PLACED
    )
    where = {"position": 1, "tag": tag(trigger, 1)}
    events[at] = event(trigger, EventKind.PLACED, order_id="11", reconciled=True, **where)
    events.insert(at, event(trigger, EventKind.RECONCILED, order_id="11", **where))
    assert judge(made, events, book(trigger, range(SIZE))).classes == ["indeterminate-resolved"]


def test_a_failed_order_with_its_reason_leaves_the_others_placed() -> None:
    """Position 1 refused with a reason, 0 and 2 placed: the audit counts a `failed`
    trigger with no fault; the campaign, where no fault justifies a refusal, calls it
    lost for that reason only (the placed orders are accounted for, not unexpected)."""
    trigger = make_basket(SIZE)
    made = record(trigger, ("placed", "failed", "placed"))
    orders = book(trigger, [0, 2])
    result = audited(made, history(made), orders)
    assert (result.failed, result.faults) == (1, 0)
    judged = judge(made, history(made), orders)
    assert judged.classes == ["lost"]
    assert "ended `failed`" in judged.why


# --- duplicated, lost, oco-double, unexpected ------------------------------------------------


def test_a_second_order_under_one_positions_tag_is_duplicated() -> None:
    """Position 2's tag twice at the broker: duplicated, for the audit too."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    orders = [*book(trigger, range(SIZE)), {"order_id": "99", "tag": tag(trigger, 2)}]
    judged = judge(made, history(made), orders)
    assert "duplicated" in judged.classes
    assert tag(trigger, 2) in judged.why
    assert audited(made, history(made), orders).duplicates == [tag(trigger, 2)]


def test_a_placed_order_missing_at_the_broker_is_lost() -> None:
    """Rows and events say position 1 was placed; the broker has no order under its tag."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    orders = book(trigger, [0, 2])
    judged = judge(made, history(made), orders)
    assert judged.classes == ["lost"]
    assert tag(trigger, 1) in judged.why
    assert audited(made, history(made), orders).lost == [trigger.id]


def test_an_order_of_a_fired_leg_never_settled_is_lost() -> None:
    """The trigger ended (`failed`), but position 2 never reached the broker and has no
    recorded failure: lost, in the audit as well as in the campaign."""
    trigger = make_basket(SIZE)
    made = record(trigger, ("placed", "failed", ""), status=Status.FAILED)
    events = history(made, final=False)
    orders = book(trigger, [0])
    judged = judge(made, events, orders)
    assert "lost" in judged.classes
    assert tag(trigger, 2) in judged.why
    assert trigger.id in audited(made, events, orders).lost


def test_a_failure_without_a_reason_is_lost() -> None:
    """A failed order must say why; without a reason it is an order lost."""
    trigger = make_basket(SIZE)
    made = record(trigger, ("placed", "failed", "placed"))
    states = tuple(replace(s, error_message=None) for s in made.orders)
    made = replace(made, orders=states)
    orders = book(trigger, [0, 2])
    assert trigger.id in audited(made, history(made), orders).lost
    assert tag(trigger, 1) in judge(made, history(made), orders).why


def test_an_order_on_each_leg_of_an_oco_basket_is_oco_double() -> None:
    """Leg 1 fired its basket; any order of leg 2's basket (here position 1) is one too
    many: oco-double, even though no tag has two orders."""
    trigger = oco_basket()
    made = record(trigger)
    orders = [*book(trigger, range(SIZE)), *book(trigger, [1], Leg.SECOND)]
    judged = judge(made, history(made), orders)
    assert "oco-double" in judged.classes
    assert "duplicated" not in judged.classes
    assert judge(made, history(made), book(trigger, range(SIZE))).classes == ["ok"]


def test_a_failed_orders_tag_at_the_broker_or_a_wrong_order_id_is_unexpected() -> None:
    """A position whose row says failed has an order at the broker; or a placed row
    names another order id than the broker's."""
    trigger = make_basket(SIZE)
    failed = record(trigger, ("placed", "failed", "placed"))
    judged = judge(failed, history(failed), book(trigger, range(SIZE)))
    assert "unexpected" in judged.classes
    made = record(trigger)
    wrong = [*book(trigger, [0, 1]), {"order_id": "77", "tag": tag(trigger, 2)}]
    assert judge(made, history(made), wrong).classes == ["unexpected"]
    assert audited(made, history(made), wrong).wrong_order_id == [trigger.id]


def test_orders_of_an_erased_basket_are_judged_per_tag() -> None:
    """A basket the rollback removed: one order per tag and one leg of an oco are fine."""
    trigger = oco_basket()
    made = record(trigger)
    fine = judge_all([], book(trigger, range(SIZE)), erased=[made])
    assert fine.valid
    doubled = book(trigger, [0, 0])
    assert not judge_all([], doubled, erased=[made]).valid
    both = [*book(trigger, [0]), *book(trigger, [2], Leg.SECOND)]
    assert judge_all([], both, erased=[made]).counts["oco-double"] == 1


# --- histories ----------------------------------------------------------------------------


def bad(
    made: TriggerRecord, events: list[TriggerEvent], placed: Iterable[int] = range(SIZE)
) -> None:
    """Only bad-history: the broker holds each placed position's order once."""
    orders = book(made.trigger, placed)
    judged = judge(made, events, orders)
    assert judged.classes == ["bad-history"], judged
    assert audited(made, events, orders).bad_history == [made.id]


def test_an_order_placed_twice_or_without_its_request_is_bad_history() -> None:
    trigger = make_basket(SIZE)
    made = record(trigger)
    events = history(made)
    where = {"position": 0, "tag": tag(trigger, 0)}
    again = [*events[:-1], event(trigger, EventKind.PLACED, order_id="10", **where), events[-1]]
    bad(made, again)
    unsent = [
        e for e in events if not (e.kind is EventKind.ORDER_SENT and e.payload["position"] == 2)
    ]
    bad(
        replace(made, attempts=2, orders=(*made.orders[:2], replace(made.orders[2], attempts=0))),
        unsent,
    )


def test_the_baskets_outcome_before_its_orders_settle_is_bad_history() -> None:
    """The trigger's `placed` while position 2 is still pending, or `placed` with a
    failed order, or a second trigger outcome."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    events = history(made)
    early = [*events[:-3], events[-1], *events[-3:-1]]  # the outcome before position 2's
    bad(made, early)
    mixed = record(trigger, ("placed", "failed", "placed"), status=Status.PLACED)
    outcome = event(trigger, EventKind.PLACED, orders=SIZE)
    bad(mixed, [*history(mixed, final=False), outcome], placed=[0, 2])
    bad(made, [*events, event(trigger, EventKind.FAILED, error="again")])


def test_rows_that_disagree_with_the_events_or_foreign_positions_are_bad_history() -> None:
    """Rows must say what the events since the claim say; a position outside the basket,
    a tag not the position's, and per-order events on a one-order trigger are wrong."""
    trigger = make_basket(SIZE)
    made = record(trigger)
    events = history(made)
    counted = (*made.orders[:2], replace(made.orders[2], attempts=2))
    bad(replace(made, orders=counted), events)  # position 2's row counts a request too many
    wrong_tag = [
        event(trigger, e.kind, **{**e.payload, "tag": tag(trigger, 0)})
        if e.payload.get("position") == 1
        else e
        for e in events
    ]
    bad(made, wrong_tag)
    beyond = [
        event(trigger, e.kind, **{**e.payload, "position": SIZE})
        if e.payload.get("position") == 2
        else e
        for e in events
    ]
    bad(made, beyond)
    one = replace(made.trigger, leg_specs=())
    single = replace(made, trigger=one, orders=(), attempts=1, order_id="10")
    extra = [
        *events[:3],
        events[3],
        event(one, EventKind.PLACED, order_id="10"),
    ]
    problem = judge(single, extra, book(one, [0])).why
    assert "per-order event on a trigger without a basket" in problem
