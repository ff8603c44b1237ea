"""The day's range of a watched instrument, as the engine last saw it.

A missed touch is a leg's price that the day's high (or low) moved past while
the engine was blind (a ticker reconnection, a stall, a restart): the range
seen before the blind spot and the one seen after it are compared by
`TriggerBook.crossed`. Prices are integer wire units, like every price in the
core.
"""

from __future__ import annotations

from typing import NamedTuple


class DayRange(NamedTuple):
    """The highest and lowest price seen today (high >= low)."""

    high: int
    low: int

    @classmethod
    def at(cls, ltp: int) -> DayRange:
        """The range of a day that has seen one price."""
        return cls(ltp, ltp)

    def widened(self, ltp: int) -> DayRange:
        """This range with `ltp` seen too (itself when `ltp` is inside it: no new tuple)."""
        if self.low <= ltp <= self.high:
            return self
        return DayRange(max(self.high, ltp), min(self.low, ltp))

    def merged(self, other: DayRange) -> DayRange:
        """The range covering both: a quote's day high/low folded into what was seen.

        The high only grows and the low only falls, as the store keeps them:
        a range read back after a restart never hides a move seen before it.
        """
        if other.high <= self.high and other.low >= self.low:
            return self
        return DayRange(max(self.high, other.high), min(self.low, other.low))
