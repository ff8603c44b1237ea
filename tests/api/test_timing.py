"""A time leg's time against the exchanges' calendar: a warning when its orders cannot trade."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hmt.api.timing import time_warnings
from hmt.core.model import LegSpec
from tests.core.test_legs import INFY, NOW, order, v2

IST = timezone(timedelta(hours=5, minutes=30))


def _at(when: datetime) -> list[str]:
    trigger = v2(LegSpec(at=when, orders=(order(INFY, quantity=1),)), watch=None, thresholds=(0,))
    return time_warnings(trigger, NOW)


def test_in_session_is_quiet_and_closed_times_are_named() -> None:
    """Tuesday 10:00 IST trades; Saturday and Tuesday 20:00 IST do not, and say why."""
    assert _at(datetime(2026, 12, 1, 10, 0, tzinfo=IST)) == []
    (weekend,) = _at(datetime(2026, 12, 5, 10, 0, tzinfo=IST))
    assert weekend.startswith("legs[0].condition.at: 2026-12-05 10:00 IST: NSE is closed")
    assert "weekend" in weekend
    (evening,) = _at(datetime(2026, 12, 1, 20, 0, tzinfo=IST))
    assert "outside trading hours" in evening


def test_a_price_leg_or_a_past_time_gets_no_calendar_warning() -> None:
    """Only future time legs are looked up (validation names a past one)."""
    assert time_warnings(v2(), NOW) == []
    assert _at(NOW - timedelta(days=2)) == []
