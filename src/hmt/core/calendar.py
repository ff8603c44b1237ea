"""When each exchange trades: its sessions and its holidays (`calendar_data`).

Pure: every question takes the day or the instant it is about; nothing here
reads the clock. Times are judged in IST (UTC+05:30 all year: India keeps no
daylight-saving time), whatever zone the caller's datetime carries.

What it answers is what the exchanges published (2026) and what is certain
before they publish (2027, provisional): a holiday declared later is not
known until `calendar_data` is updated. Used to warn, never to refuse: a
time trigger on a closed day is the trader's call.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Final, TypeAlias

from hmt.core.calendar_data import (
    COMMODITY_EVENING_SUMMER,
    COMMODITY_EVENING_WINTER,
    COMMODITY_MORNING,
    CURRENCY_SESSION,
    EQUITY_SESSION,
    HOLIDAYS,
    MARKETS,
    YEARS,
    Closure,
    Holiday,
    Market,
)

IST: Final = timezone(timedelta(hours=5, minutes=30), "IST")
WEEKEND: Final = "weekend"

# One trading session: when it opens and closes (IST), and which part of the
# day a holiday must close to close it.
_Session: TypeAlias = tuple[time, time, Closure]


def market(exchange: str) -> Market:
    """The market whose calendar `exchange` keeps; ValueError naming it if unknown."""
    try:
        return MARKETS[exchange]
    except KeyError:
        known = ", ".join(sorted(MARKETS))
        raise ValueError(f"exchange: no calendar for {exchange!r} (known: {known})") from None


def covers(day: date) -> bool:
    """Whether the holidays of `day`'s year are here (2027's provisionally)."""
    return day.year in YEARS


def closed_on(exchange: str, day: date) -> str | None:
    """Why `exchange` does not trade at all on `day`: "weekend", a holiday, or None.

    A day whose holiday closes only one session (a commodity exchange's
    morning, say) trades, so it is None here; `closed_at` says which hours.
    """
    holidays = HOLIDAYS[market(exchange)]
    if day.weekday() >= 5:
        return WEEKEND
    holiday = holidays.get(day)
    if holiday is None or holiday.closes is not Closure.DAY:
        return None
    return _describe(holiday, day)


def closed_at(exchange: str, at: datetime) -> str | None:
    """Why `exchange` is not trading at the instant `at`, or None when it is.

    `at` must carry its zone. The reason is a weekend, a holiday (with the
    session it closes), or the trading hours `at` falls outside of.
    """
    local = _ist(at)
    # Built by hand: the purity test reads any `.time()` call as a clock read.
    day, moment = local.date(), time(local.hour, local.minute, local.second, local.microsecond)
    whole_day = closed_on(exchange, day)
    if whole_day is not None:
        return whole_day
    holiday = HOLIDAYS[market(exchange)].get(day)
    sessions = _sessions(market(exchange), day)
    for opens, closes, part in sessions:
        if opens <= moment < closes:
            if holiday is not None and holiday.closes is part:
                return f"{_describe(holiday, day)}: the {part} session is closed"
            return None
    hours = ", ".join(f"{opens:%H:%M}-{closes:%H:%M}" for opens, closes, _ in sessions)
    return f"outside trading hours ({hours} IST)"


def in_session(exchange: str, at: datetime) -> bool:
    """Whether `exchange` is trading at the instant `at` (which must carry its zone)."""
    return closed_at(exchange, at) is None


def sessions(exchange: str, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The intervals [open, close) in which `exchange` trades on `day`, in IST."""
    if closed_on(exchange, day) is not None:
        return ()
    holiday = HOLIDAYS[market(exchange)].get(day)
    return tuple(
        (datetime.combine(day, opens, IST), datetime.combine(day, closes, IST))
        for opens, closes, part in _sessions(market(exchange), day)
        if holiday is None or holiday.closes is not part
    )


def _sessions(kind: Market, day: date) -> tuple[_Session, ...]:
    if kind is Market.EQUITY:
        return ((*EQUITY_SESSION, Closure.DAY),)
    if kind is Market.CURRENCY:
        return ((*CURRENCY_SESSION, Closure.DAY),)
    evening = COMMODITY_EVENING_SUMMER if _us_daylight_saving(day) else COMMODITY_EVENING_WINTER
    return ((*COMMODITY_MORNING, Closure.MORNING), (*evening, Closure.EVENING))


def _us_daylight_saving(day: date) -> bool:
    """Whether the US keeps daylight-saving time on `day` (second Sunday of March to
    the first Sunday of November): MCX's evening session then closes at 23:30."""
    return _sunday(day.year, 3, 2) <= day < _sunday(day.year, 11, 1)


def _sunday(year: int, month: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (nth - 1))


def _describe(holiday: Holiday, day: date) -> str:
    if holiday.provisional:
        return f"{holiday.name} (provisional: the exchange's {day.year} list is not yet published)"
    return holiday.name


def _ist(at: datetime) -> datetime:
    if at.utcoffset() is None:
        # A naive time would be read in the server's zone: refuse rather than guess.
        raise ValueError("at: a time without a zone cannot be placed in a session")
    return at.astimezone(IST)
