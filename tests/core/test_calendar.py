"""Exchange sessions and holidays: what the exchanges published for 2026, and 2027's
provisional days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from hmt.core.calendar import (
    IST,
    WEEKEND,
    closed_at,
    closed_on,
    covers,
    in_session,
    market,
    sessions,
)
from hmt.core.calendar_data import Closure, Market
from hmt.core.types import Exchange

# NSE/CMTR/71775 and NSE/FAOP/71777, with 15 January added by NSE/CMTR/72260.
NSE_2026 = {
    date(2026, 1, 15): "Municipal Corporation elections in Maharashtra",
    date(2026, 1, 26): "Republic Day",
    date(2026, 3, 3): "Holi",
    date(2026, 3, 26): "Shri Ram Navami",
    date(2026, 3, 31): "Shri Mahavir Jayanti",
    date(2026, 4, 3): "Good Friday",
    date(2026, 4, 14): "Dr. Baba Saheb Ambedkar Jayanti",
    date(2026, 5, 1): "Maharashtra Day",
    date(2026, 5, 28): "Bakri Id",
    date(2026, 6, 26): "Muharram",
    date(2026, 9, 14): "Ganesh Chaturthi",
    date(2026, 10, 2): "Mahatma Gandhi Jayanti",
    date(2026, 10, 20): "Dussehra",
    date(2026, 11, 10): "Diwali-Balipratipada",
    date(2026, 11, 24): "Prakash Gurpurb Sri Guru Nanak Dev",
    date(2026, 12, 25): "Christmas",
}


def ist(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), IST)


def days_of(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days)]


@pytest.mark.parametrize("exchange", ["NSE", "BSE", "NFO", "BFO"])
def test_equity_and_fo_close_on_exactly_the_published_2026_days(exchange: str) -> None:
    """Every weekday of 2026 is closed exactly on NSE's list, named as the circular names it."""
    closed = {
        day: reason
        for day in days_of(2026)
        if (reason := closed_on(exchange, day)) is not None and reason != WEEKEND
    }
    assert closed == NSE_2026


def test_weekends_are_closed_and_trading_days_open() -> None:
    """Saturday and Sunday are "weekend" everywhere (a holiday on a weekend too); an ordinary
    Tuesday is open."""
    for exchange in ("NSE", "CDS", "MCX"):
        assert closed_on(exchange, date(2026, 11, 28)) == WEEKEND  # a Saturday
        assert closed_on(exchange, date(2026, 8, 15)) == WEEKEND  # Independence Day, Saturday
        assert closed_on(exchange, date(2026, 12, 1)) is None
    assert closed_on("NSE", date(2028, 1, 1)) == WEEKEND, "weekends are known in any year"


def test_currency_keeps_the_banks_holidays_too() -> None:
    """CDS and BCD close on 20 weekdays of 2026: the equity days and the banks' own."""
    for exchange in ("CDS", "BCD"):
        closed = [d for d in days_of(2026) if closed_on(exchange, d) not in (None, WEEKEND)]
        assert len(closed) == 20
        assert set(NSE_2026) < set(closed)
        assert closed_on(exchange, date(2026, 4, 1)) == "Annual Bank Closing"
    assert closed_on("NSE", date(2026, 4, 1)) is None


def test_commodity_half_days() -> None:
    """MCX trades the evening of a morning-only holiday, the morning of New Year, and
    neither session on Republic Day."""
    holi = date(2026, 3, 3)
    assert closed_on("MCX", holi) is None, "the exchange trades that day"
    assert closed_at("MCX", ist(holi, 10)) == "Holi: the morning session is closed"
    assert in_session("MCX", ist(holi, 18))
    new_year = date(2026, 1, 1)
    assert in_session("MCX", ist(new_year, 10))
    assert closed_at("MCX", ist(new_year, 18)) == "New Year: the evening session is closed"
    assert closed_on("MCX", date(2026, 1, 26)) == "Republic Day"
    assert not in_session("MCX", ist(date(2026, 1, 26), 18))
    # 3 March: the US is still on winter time, so the evening runs to 23:55.
    assert sessions("MCX", holi) == ((ist(holi, 17), ist(holi, 23, 55)),)
    assert sessions("NCO", date(2026, 1, 26)) == ()


def test_equity_session_edges() -> None:
    """NSE trades from 09:15 to 15:30 IST: the open is in, the close is out; a UTC time is
    judged at its IST instant."""
    day = date(2026, 12, 1)
    assert not in_session("NSE", ist(day, 9, 14, 59))
    assert in_session("NSE", ist(day, 9, 15))
    assert in_session("NSE", ist(day, 15, 29, 59))
    assert closed_at("NSE", ist(day, 15, 30)) == "outside trading hours (09:15-15:30 IST)"
    assert in_session("NSE", datetime(2026, 12, 1, 3, 45, tzinfo=UTC))  # 09:15 IST
    assert not in_session("NSE", datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # 15:30 IST
    assert closed_at("NSE", ist(date(2026, 1, 26), 10)) == "Republic Day"
    assert closed_at("CDS", ist(day, 16, 59)) is None
    assert not in_session("CDS", ist(day, 17))


def test_mcx_evening_follows_us_daylight_saving() -> None:
    """The evening session ends at 23:30 while the US keeps summer time, 23:55 otherwise."""
    june, january = date(2026, 6, 2), date(2026, 1, 6)
    assert in_session("MCX", ist(june, 23, 29))
    assert not in_session("MCX", ist(june, 23, 40))
    assert in_session("MCX", ist(january, 23, 40))
    assert not in_session("MCX", ist(january, 23, 55))
    # 2026: US summer time from Sunday 8 March to Sunday 1 November.
    assert in_session("MCX", ist(date(2026, 3, 6), 23, 40))
    assert in_session("MCX", ist(date(2026, 3, 9), 23, 29))
    assert not in_session("MCX", ist(date(2026, 3, 9), 23, 40))
    assert not in_session("MCX", ist(date(2026, 10, 30), 23, 40))
    assert in_session("MCX", ist(date(2026, 11, 2), 23, 40))


def test_2027_is_provisional() -> None:
    """2027's lists are not yet published: its fixed-date holidays are there, marked."""
    assert covers(date(2027, 6, 1))
    assert not covers(date(2028, 6, 1))
    reason = closed_on("NSE", date(2027, 1, 26))
    assert reason is not None
    assert reason.startswith("Republic Day (provisional")
    assert closed_on("NSE", date(2027, 3, 3)) is None


def test_bad_input_names_the_field() -> None:
    """An unknown exchange or a time without a zone raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match="exchange: no calendar for 'NYSE'"):
        closed_on("NYSE", date(2026, 12, 1))
    with pytest.raises(ValueError, match="at: a time without a zone"):
        in_session("NSE", datetime(2026, 12, 1, 10, 0))  # noqa: DTZ001 - the naive time under test


def test_every_exchange_has_a_calendar() -> None:
    """Each exchange of the core's enumeration maps to a market with holidays and sessions."""
    assert {market(exchange) for exchange in Exchange} == set(Market)
    assert market("MCX") is Market.COMMODITY
    assert Closure.DAY.value == "day"
