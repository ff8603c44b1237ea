"""DayRange: the day's high and low as the engine last saw them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hmt.core.gaps import DayRange

prices = st.integers(0, 10_000_000)


def test_a_price_inside_the_range_changes_nothing() -> None:
    """widened/merged return the same range when nothing new was seen (no new tuple)."""
    day = DayRange(high=110, low=90)
    assert day.widened(100) is day
    assert day.widened(110) is day
    assert day.merged(DayRange(105, 95)) is day


def test_widened_and_merged_move_the_edges() -> None:
    """A new high or low moves only its own edge; merged covers both ranges."""
    day = DayRange.at(100)
    assert day == DayRange(100, 100)
    assert day.widened(120) == DayRange(120, 100)
    assert day.widened(80) == DayRange(100, 80)
    assert DayRange(120, 100).merged(DayRange(110, 70)) == DayRange(120, 70)


@given(first=prices, seen=st.lists(prices, max_size=30))
def test_widened_is_the_high_and_low_of_every_price_seen(first: int, seen: list[int]) -> None:
    """Folding prices one by one gives max and min of them all; a merge of two partial
    folds gives the same."""
    day = DayRange.at(first)
    for ltp in seen:
        day = day.widened(ltp)
    everything = [first, *seen]
    assert day == DayRange(max(everything), min(everything))
    half = len(seen) // 2
    left, right = DayRange.at(first), DayRange.at(first)
    for ltp in seen[:half]:
        left = left.widened(ltp)
    for ltp in seen[half:]:
        right = right.widened(ltp)
    assert left.merged(right) == day
