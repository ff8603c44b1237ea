"""A candle as a price path: the order in which its four prices are assumed to trade.

A candle says where a price went (open, high, low, close), not in what order.
The backtest walks it as open -> the nearer of high and low -> the other ->
close (docs/backtest.md): the move to the nearer extreme is the smaller one,
so it is taken to come first. When high and low are equally far from the open
the high comes first. Between two path points the price is taken to move
continuously, so a level between them is crossed at the level itself; between
one candle's close and the next one's open it may jump (a gap).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Candle(NamedTuple):
    """One candle of one instrument, prices in integer wire units."""

    at: datetime  # when the candle opens
    open: int
    high: int
    low: int
    close: int

    def problem(self) -> str | None:
        """Why these four prices cannot be a candle, or None if they can."""
        if min(self.open, self.high, self.low, self.close) <= 0:
            return "prices must be positive"
        if self.high < max(self.open, self.close, self.low):
            return "high is below open, low or close"
        if self.low > min(self.open, self.close):
            return "low is above open or close"
        return None


def path(candle: Candle) -> tuple[int, int, int, int]:
    """The candle's prices in the order they are replayed: open, nearer, other, close."""
    if candle.high - candle.open <= candle.open - candle.low:
        return candle.open, candle.high, candle.low, candle.close
    return candle.open, candle.low, candle.high, candle.close


def spans(low: int, high: int, level: int) -> bool:
    """Whether `level` lies within the candle range [low, high]."""
    return low <= level <= high
