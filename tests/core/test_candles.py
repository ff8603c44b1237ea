"""The candle path rule: open -> the nearer of high and low -> the other -> close."""

from __future__ import annotations

from datetime import UTC, datetime

from hmt.core.candles import Candle, path

AT = datetime(2026, 12, 1, 3, 45, tzinfo=UTC)


def test_the_nearer_extreme_comes_first() -> None:
    # open 100: the high (103) is 3 away, the low (90) 10: high first.
    assert path(Candle(AT, 100, 103, 90, 95)) == (100, 103, 90, 95)
    # open 100: the low (98) is 2 away, the high (110) 10: low first.
    assert path(Candle(AT, 100, 110, 98, 105)) == (100, 98, 110, 105)


def test_equal_distances_take_the_high_first() -> None:
    assert path(Candle(AT, 100, 105, 95, 100)) == (100, 105, 95, 100)


def test_a_flat_candle_is_one_price_four_times() -> None:
    assert path(Candle(AT, 100, 100, 100, 100)) == (100, 100, 100, 100)


def test_impossible_candles_are_named() -> None:
    assert Candle(AT, 100, 99, 90, 95).problem() == "high is below open, low or close"
    assert Candle(AT, 100, 110, 101, 105).problem() == "low is above open or close"
    assert Candle(AT, 0, 110, 0, 105).problem() == "prices must be positive"
    assert Candle(AT, 100, 110, 90, 105).problem() is None
