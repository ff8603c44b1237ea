"""The daily login reminder: 08:45 IST on a trading day, then hourly until logged in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hmt.core.calendar import IST
from hmt.core.login_reminder import due, window

MONDAY = datetime(2026, 12, 7, tzinfo=IST)  # a trading day
SATURDAY = datetime(2026, 12, 5, tzinfo=IST)


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute)


def test_first_reminder_is_at_0845_ist_on_a_trading_day() -> None:
    assert window(MONDAY) == (at(MONDAY, 8, 45), at(MONDAY, 15, 30))
    assert not due(at(MONDAY, 8, 44), session_valid=False, last_sent=None)
    assert due(at(MONDAY, 8, 45), session_valid=False, last_sent=None)


def test_then_hourly_until_the_close_and_never_with_a_valid_session() -> None:
    sent = at(MONDAY, 8, 45)
    assert not due(at(MONDAY, 9, 44), session_valid=False, last_sent=sent)
    assert due(at(MONDAY, 9, 45), session_valid=False, last_sent=sent)
    assert not due(at(MONDAY, 9, 45), session_valid=True, last_sent=sent)
    assert not due(at(MONDAY, 15, 30), session_valid=False, last_sent=sent)


def test_yesterdays_reminder_does_not_hold_back_todays() -> None:
    yesterday = at(MONDAY, 14, 0) - timedelta(days=3)
    assert due(at(MONDAY, 8, 50), session_valid=False, last_sent=yesterday)


def test_none_on_a_weekend_or_holiday() -> None:
    assert window(SATURDAY) is None
    assert not due(at(SATURDAY, 9, 0), session_valid=False, last_sent=None)
    christmas = datetime(2026, 12, 25, 9, 0, tzinfo=IST)
    assert not due(christmas, session_valid=False, last_sent=None)


def test_utc_instants_are_judged_in_ist() -> None:
    assert due(at(MONDAY, 8, 45).astimezone(UTC), session_valid=False, last_sent=None)


def test_a_session_from_before_0600_ist_counts_as_lapsed() -> None:
    yesterday = at(MONDAY, 14, 0) - timedelta(days=1)
    today = at(MONDAY, 7, 30)
    assert due(at(MONDAY, 8, 45), session_valid=True, last_sent=None, session_since=yesterday)
    assert not due(at(MONDAY, 8, 45), session_valid=True, last_sent=None, session_since=today)
    assert not due(at(MONDAY, 8, 45), session_valid=True, last_sent=None)
