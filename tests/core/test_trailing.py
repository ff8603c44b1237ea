"""The trailing stop as a value, against a brute force over the whole price history."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmt.core.trailing import Offset, Trail, TrailState, advance, fires
from hmt.core.types import Direction, Side
from tests.support.trailing import trails


def brute(trail: Trail, refs: list[int]) -> TrailState:
    """The state after `refs`, from the rules as written, recomputed from the whole history.

    Exact rationals for the distance; the stop is the activation's stop plus
    as many whole steps (or ticks) as fit under today's level (never above it).
    """
    sell = trail.side is Side.SELL
    start = next((i for i, r in enumerate(refs) if _touched(trail, r)), None)
    if start is None:
        return TrailState()
    seen = refs[start:]
    best = max(seen) if sell else min(seen)

    def level(b: int) -> int:
        distance = {
            Offset.PRICE: Fraction(trail.offset),
            Offset.TICKS: Fraction(trail.offset * trail.tick),
            Offset.BPS: Fraction(b * trail.offset, 10_000),
        }[trail.kind]
        grid = (b - distance) / trail.tick if sell else (b + distance) / trail.tick
        return (math.floor(grid) if sell else math.ceil(grid)) * trail.tick

    first = level(seen[0])
    # The best level of the history: levels only improve with the best (rounded bps
    # included), so it is the level of the best reference.
    room = level(best) - first if sell else first - level(best)
    unit = trail.step or trail.tick
    moved = max(0, room // unit * unit)
    return TrailState(best, first + moved if sell else first - moved)


def _touched(trail: Trail, ref: int) -> bool:
    if trail.activation is None:
        return True
    return ref >= trail.activation if trail.side is Side.SELL else ref <= trail.activation


prices = st.lists(st.integers(1, 400), min_size=1, max_size=60)


@settings(max_examples=2_000)
@given(trail=trails(), refs=prices, ltp=st.integers(1, 400))
def test_trail_against_brute_force(trail: Trail, refs: list[int], ltp: int) -> None:
    """Every offset kind, activation, step, tick, both sides: the state after each
    reference equals the brute force, and it fires exactly when the LTP is past the stop."""
    state = trail.start()
    for i, ref in enumerate(refs):
        state = advance(trail, state, ref)
        assert state == brute(trail, refs[: i + 1])
    want = state.stop is not None and (
        ltp <= state.stop if trail.side is Side.SELL else ltp >= state.stop
    )
    assert fires(trail, state, ltp) is want


@settings(max_examples=1_000)
@given(trail=trails(), refs=prices)
def test_stop_never_loosens_never_tighter_than_asked(trail: Trail, refs: list[int]) -> None:
    """The stop only tightens, sits on the tick grid, at least the offset from the best
    reference, and less than one tick (or one step) plus the offset from it."""
    sell = trail.side is Side.SELL
    state, last = trail.start(), None
    for ref in refs:
        state = trail.advance(state, ref)
        if state.stop is None or state.best is None:
            continue
        stop, best = state.stop, state.best
        if last is not None:
            assert (stop >= last) if sell else (stop <= last)
        last = stop
        assert stop % trail.tick == 0
        asked = {
            Offset.PRICE: Fraction(trail.offset),
            Offset.TICKS: Fraction(trail.offset * trail.tick),
            Offset.BPS: Fraction(best * trail.offset, 10_000),
        }[trail.kind]
        gap = best - stop if sell else stop - best
        assert gap >= asked
        assert gap < asked + trail.tick + (trail.step or 0)


def test_a_sell_stop_by_hand() -> None:
    """Offset 10 on tick 5, activated at 100, step 10: rounds down, moves in steps of 10."""
    trail = Trail(Side.SELL, Offset.PRICE, 12, 5, activation=100, step=10)
    state = trail.start()
    state = trail.advance(state, 99)
    assert state == TrailState()
    assert not trail.fires(state, 1)
    state = trail.advance(state, 103)
    assert state == TrailState(103, 90)  # 91 rounds down to 90
    state = trail.advance(state, 109)
    assert state == TrailState(109, 90)  # 95 is less than one step above 90
    state = trail.advance(state, 112)
    assert state == TrailState(112, 100)
    state = trail.advance(state, 101)
    assert state == TrailState(112, 100)  # a fall never loosens it
    assert trail.fires(state, 100)
    assert not trail.fires(state, 101)


def test_a_buy_stop_in_basis_points_by_hand() -> None:
    """1% above the low on tick 5, no activation: rounds up, fires at or above."""
    trail = Trail(Side.BUY, Offset.BPS, 100, 5)
    state = trail.advance(trail.start(), 20_000)
    assert state == TrailState(20_000, 20_200)
    state = trail.advance(state, 19_990)  # 19,990 + 199.9 = 20,189.9 -> up to 20,190
    assert state == TrailState(19_990, 20_190)
    assert trail.direction is Direction.AT_OR_ABOVE
    assert trail.fires(state, 20_190)
    assert not trail.fires(state, 20_189)


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"tick": 0}, "trail.tick"),
        ({"offset": 0}, "trail.offset"),
        ({"kind": Offset.BPS, "offset": 10_000}, "trail.offset"),
        ({"activation": 0}, "trail.activation"),
        ({"step": 7}, "trail.step"),
        ({"step": 0}, "trail.step"),
    ],
)
def test_bad_terms_name_the_field(terms: dict[str, object], field: str) -> None:
    """Bad terms are refused with the field and the rule."""
    args: dict[str, object] = {"side": Side.SELL, "kind": Offset.PRICE, "offset": 10, "tick": 5}
    args.update(terms)
    with pytest.raises(ValueError, match=field):
        Trail(**args)  # type: ignore[arg-type]
