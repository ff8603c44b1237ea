"""Brackets in the core: the fill -> arm decision against a brute-force model."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmt.core.brackets import (
    BracketState,
    EntryReport,
    Exits,
    check_entry,
    check_exits,
    exit_id,
    exit_trigger,
    may_be_exit,
    on_report,
)
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.trailing import Offset, Trail
from hmt.core.types import Leg, OrderType, Product, Side, TriggerType
from tests.support.factories import make_oco, make_trigger


def test_exit_ids_are_pinned() -> None:
    """The derivation is stored data's key: changing it would arm a second exit."""
    bracket = "00000000-0000-4000-8000-000000000001"
    assert exit_id(bracket, 1) == "2ee4c156-632b-5b00-b094-64bdb5ae1bb0"
    assert exit_id(bracket, 1) != exit_id(bracket, 2)
    assert exit_id(bracket, 1) == exit_id(bracket.upper(), 1)


@given(st.uuids(version=4), st.integers(min_value=1, max_value=10_000))
def test_exits_are_told_from_the_ids_the_api_gives(bracket: object, generation: int) -> None:
    """The engine reads the order book before arming what may be an exit: every exit id
    is recognised, and no random (version 4) id is."""
    assert may_be_exit(exit_id(str(bracket), generation))
    assert not may_be_exit(str(bracket))
    assert not may_be_exit(str(bracket).upper())
    assert not may_be_exit("not-an-id")


def test_first_fill_arms_then_grows_then_closes() -> None:
    state = BracketState(Status.OPEN)
    first = on_report(state, EntryReport("1", "OPEN", 3))
    assert first is not None
    assert first.arm == 3
    assert first.grow_to == 0
    assert first.state == BracketState(Status.ARMED, 3, 3, 1, True, 3)
    assert [k for k, _ in first.events] == [EventKind.FILLED]
    more = on_report(first.state, EntryReport("1", "COMPLETE", 10))
    assert more is not None
    assert more.grow_to == 10
    assert more.arm == 0
    assert more.state.status is Status.FILLED
    assert more.state.armed == 10
    assert [k for k, _ in more.events] == [EventKind.FILLED, EventKind.ENTRY_CLOSED]


def test_replay_and_stale_updates_change_nothing() -> None:
    state = BracketState(Status.ARMED, 5, 5, 1, True, 5)
    assert on_report(state, EntryReport("1", "OPEN", 5)) is None
    assert on_report(state, EntryReport("1", "OPEN", 2)) is None  # older update
    done = BracketState(Status.FILLED, 5, 5, 1, True, 5)
    assert on_report(done, EntryReport("1", "COMPLETE", 9)) is None


def test_fills_after_an_exit_fired_get_a_top_up_exit() -> None:
    fired = BracketState(Status.ARMED, 4, 4, 1, exit_open=False, exit_quantity=4)
    decision = on_report(fired, EntryReport("1", "OPEN", 6))
    assert decision is not None
    assert decision.arm == 2
    assert decision.state.generation == 2
    assert decision.events[0][1]["exit"] == "top_up"


@pytest.mark.parametrize("status", ["REJECTED", "CANCELLED"])
def test_entry_ending_with_nothing_filled_fails_with_the_reason(status: str) -> None:
    decision = on_report(BracketState(Status.OPEN), EntryReport("1", status, 0, "RMS:margin"))
    assert decision is not None
    assert decision.state.status is Status.FAILED
    assert decision.reason == "RMS:margin"
    assert decision.arm == 0


def test_entry_cancelled_after_a_partial_fill_closes_filled() -> None:
    decision = on_report(BracketState(Status.OPEN), EntryReport("1", "CANCELLED", 2))
    assert decision is not None
    assert decision.state.status is Status.FILLED
    assert decision.arm == 2


REPORTS = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.sampled_from(["OPEN", "UPDATE", "COMPLETE", "CANCELLED", "REJECTED"]),
        st.booleans(),  # the latest exit fired before this report (it can no longer grow)
    ),
    max_size=12,
)


@settings(max_examples=500)
@given(REPORTS)
def test_exits_cover_exactly_the_fills(reports: list[tuple[int, str, bool]]) -> None:
    """Brute force: the exits' quantities sum to the largest fill seen while the
    bracket was live, never more; one event per change; nothing after the end."""
    state = BracketState(Status.OPEN)
    exits: list[int] = []  # the model: each exit's quantity
    exit_fired = False
    live_max = 0
    for filled, status, fires in reports:
        if fires and exits:
            exit_fired = True
        state = replace(state, exit_open=state.exit_open and not exit_fired)
        before = state
        decision = on_report(state, EntryReport("1", status, filled))
        live = before.status in (Status.OPEN, Status.ARMED)
        if live:
            live_max = max(live_max, filled)
        if decision is None:
            final = status in {"COMPLETE", "CANCELLED", "REJECTED"}
            assert not live or (filled <= before.filled and not final)
            continue
        assert live
        if decision.arm:
            exits.append(decision.arm)
            exit_fired = False
        if decision.grow_to:
            assert not exit_fired
            assert exits
            exits[-1] = decision.grow_to
        state = decision.state
        assert sum(exits) == state.armed == state.filled == live_max
        assert len(exits) == state.generation
    assert sum(exits) <= max([0] + [f for f, _, _ in reports])


def test_exit_trigger_is_an_opposite_oco_of_the_same_product() -> None:
    entry = make_trigger(side=Side.BUY, product=Product.MIS, quantity=10)
    exits = Exits(target=170_000, stop=150_000)
    check_entry(entry)
    check_exits(entry, exits)
    exit = exit_trigger(entry, exits, 1, 4)
    assert exit.id == exit_id(entry.id, 1)
    assert (exit.trigger_type, exit.side, exit.quantity) == (TriggerType.OCO, Side.SELL, 4)
    assert (exit.product, exit.order_type) == (Product.MIS, OrderType.MARKET)
    assert (exit.threshold(Leg.FIRST), exit.threshold(Leg.SECOND)) == (150_000, 170_000)


def test_a_trailing_stop_exit() -> None:
    entry = make_trigger(side=Side.SELL)
    trail = Trail(side=Side.BUY, kind=Offset.PRICE, offset=500, tick=5)
    exits = Exits(target=150_000, trail=trail)
    check_exits(entry, exits)
    exit = exit_trigger(entry, exits, 2, 3)
    assert exit.side is Side.BUY
    assert exit.trail(Leg.FIRST) == trail
    assert exit.trail(Leg.SECOND) is None


@pytest.mark.parametrize(
    ("side", "stop", "target"), [(Side.BUY, 170_000, 150_000), (Side.SELL, 150_000, 170_000)]
)
def test_exits_on_the_wrong_side_are_refused(side: Side, stop: int, target: int) -> None:
    with pytest.raises(ValueError, match="stop must be"):
        check_exits(make_trigger(side=side), Exits(target=target, stop=stop))


def test_an_oco_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="single trigger"):
        check_entry(make_oco(Side.BUY, 170_000, 150_000))
    with pytest.raises(ValueError, match="exactly one of"):
        Exits(target=1)


def test_exit_ids_are_rfc_4122_name_based() -> None:
    """Written out without the uuid module (the core's rule): the same as uuid5."""
    import uuid

    bracket = "0959D547-8188-407c-a74f-702408522229"
    namespace = uuid.UUID("6f1d6a52-3c1e-4b7e-9a53-0b9a1c1e5e14")
    for generation in (1, 2, 17):
        expected = uuid.uuid5(namespace, f"{bracket.lower()}:{generation}")
        assert exit_id(bracket, generation) == str(expected)
