"""Exchange sessions and trading holidays, 2026 and 2027, as published by the exchanges.

Data, not logic (`hmt.core.calendar` reads it). A Python module rather than a
data file: the core reads no files, and a module is always installed with
the package. Edit it when an exchange publishes a list or changes one (an
exchange may add a holiday at a few days' notice, as NSE and BSE did for
15 January 2026); name the circular next to what it changed.

Sources
- Equity and F&O (NSE, BSE, NFO, BFO): NSE circulars NSE/CMTR/71775 and
  NSE/FAOP/71777 of 12 December 2025 (the same 15 weekday holidays; BSE's
  notice of 12 December 2025 for its equity and equity derivatives segments
  lists the same days), amended by NSE/CMTR/72260 and NSE/FAOP/72262 of
  12 January 2026 (15 January 2026, Maharashtra municipal elections).
- Currency derivatives (CDS, BCD): NSE's circular of 23 December 2025 for the
  currency derivatives segment and BSE notice 20251223-12 (the same 19
  weekday holidays), amended for 15 January 2026 by BSE's notice of
  9 January 2026 and NSE's of 12 January 2026.
- Commodity derivatives (MCX, NCO): BSE's notice of 15 December 2025 and NSE/COM/71784
  for their commodity derivatives segments, whose days and sessions agree
  with MCX's 2026 list as the press reported it (MCX's own circular was not
  at hand); 15 January 2026 morning session closed per NSE/COM/72263.
- 2027: no exchange had published its 2027 list when this was written
  (30 November 2026; the lists usually come in mid-December). Only the
  fixed-date holidays that every year's list carries, on weekdays, are
  here, each marked provisional. Replace them with the circulars' lists.

Muhurat trading (a special evening session on Diwali, 8 November 2026, a
Sunday) is not modelled: its timings are notified days before.
"""

from __future__ import annotations

from datetime import date, time
from enum import StrEnum
from typing import Final, NamedTuple


class Market(StrEnum):
    """Exchanges that share one holiday list and one set of sessions."""

    EQUITY = "equity"  # NSE, BSE cash and F&O (NFO, BFO)
    CURRENCY = "currency"  # CDS, BCD
    COMMODITY = "commodity"  # MCX, NCO


class Closure(StrEnum):
    """Which sessions a holiday closes (commodity exchanges close half days)."""

    DAY = "day"
    MORNING = "morning"  # 09:00-17:00 closed, the evening session trades
    EVENING = "evening"  # the morning session trades, 17:00 onwards closed


class Holiday(NamedTuple):
    name: str
    closes: Closure = Closure.DAY
    provisional: bool = False  # not from a published list (2027, see the module's doc)


# Exchange (Kite's `exchange` value) -> the market whose holidays and sessions it keeps.
MARKETS: Final[dict[str, Market]] = {
    "NSE": Market.EQUITY,
    "BSE": Market.EQUITY,
    "NFO": Market.EQUITY,
    "BFO": Market.EQUITY,
    "CDS": Market.CURRENCY,
    "BCD": Market.CURRENCY,
    "MCX": Market.COMMODITY,
    "NCO": Market.COMMODITY,
}

# Continuous trading, IST, [open, close). Equity's pre-open (09:00-09:08) is
# not trading. Currency: the rupee pairs (cross-currency pairs trade to
# 19:30; not modelled). Commodity: the morning session to 17:00, then the
# evening session to 23:30 while the US is on daylight-saving time and 23:55
# otherwise (MCX follows the US markets it is priced from); the session is the
# widest one, for bullion, metals and energy: agricultural contracts stop at
# 17:00 (or 21:00 for the internationally referenced ones).
EQUITY_SESSION: Final = (time(9, 15), time(15, 30))
CURRENCY_SESSION: Final = (time(9, 0), time(17, 0))
COMMODITY_MORNING: Final = (time(9, 0), time(17, 0))
COMMODITY_EVENING_SUMMER: Final = (time(17, 0), time(23, 30))
COMMODITY_EVENING_WINTER: Final = (time(17, 0), time(23, 55))

_MUNICIPAL = "Municipal Corporation elections in Maharashtra"

EQUITY_HOLIDAYS: Final[dict[date, Holiday]] = {
    date(2026, 1, 15): Holiday(_MUNICIPAL),
    date(2026, 1, 26): Holiday("Republic Day"),
    date(2026, 3, 3): Holiday("Holi"),
    date(2026, 3, 26): Holiday("Shri Ram Navami"),
    date(2026, 3, 31): Holiday("Shri Mahavir Jayanti"),
    date(2026, 4, 3): Holiday("Good Friday"),
    date(2026, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti"),
    date(2026, 5, 1): Holiday("Maharashtra Day"),
    date(2026, 5, 28): Holiday("Bakri Id"),
    date(2026, 6, 26): Holiday("Muharram"),
    date(2026, 9, 14): Holiday("Ganesh Chaturthi"),
    date(2026, 10, 2): Holiday("Mahatma Gandhi Jayanti"),
    date(2026, 10, 20): Holiday("Dussehra"),
    date(2026, 11, 10): Holiday("Diwali-Balipratipada"),
    date(2026, 11, 24): Holiday("Prakash Gurpurb Sri Guru Nanak Dev"),
    date(2026, 12, 25): Holiday("Christmas"),
    # 2027, provisional: the fixed-date holidays that fall on weekdays
    # (15 August is a Sunday, 1 May, 2 October and 25 December Saturdays).
    date(2027, 1, 26): Holiday("Republic Day", provisional=True),
    date(2027, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti", provisional=True),
}

CURRENCY_HOLIDAYS: Final[dict[date, Holiday]] = {
    date(2026, 1, 15): Holiday(_MUNICIPAL),
    date(2026, 1, 26): Holiday("Republic Day"),
    date(2026, 2, 19): Holiday("Chhatrapati Shivaji Maharaj Jayanti"),
    date(2026, 3, 3): Holiday("Holi"),
    date(2026, 3, 19): Holiday("Gudi Padwa"),
    date(2026, 3, 26): Holiday("Shri Ram Navami"),
    date(2026, 3, 31): Holiday("Shri Mahavir Jayanti"),
    date(2026, 4, 1): Holiday("Annual Bank Closing"),
    date(2026, 4, 3): Holiday("Good Friday"),
    date(2026, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti"),
    date(2026, 5, 1): Holiday("Maharashtra Day / Buddha Pournima"),
    date(2026, 5, 28): Holiday("Bakri Id"),
    date(2026, 6, 26): Holiday("Muharram"),
    date(2026, 8, 26): Holiday("Id-E-Milad"),
    date(2026, 9, 14): Holiday("Ganesh Chaturthi"),
    date(2026, 10, 2): Holiday("Mahatma Gandhi Jayanti"),
    date(2026, 10, 20): Holiday("Dussehra"),
    date(2026, 11, 10): Holiday("Diwali-Balipratipada"),
    date(2026, 11, 24): Holiday("Prakash Gurpurb Sri Guru Nanak Dev"),
    date(2026, 12, 25): Holiday("Christmas"),
    # 2027, provisional (fixed dates on weekdays; the currency segment also
    # closes for the banks' Shivaji Jayanti and annual closing every year).
    date(2027, 1, 26): Holiday("Republic Day", provisional=True),
    date(2027, 2, 19): Holiday("Chhatrapati Shivaji Maharaj Jayanti", provisional=True),
    date(2027, 4, 1): Holiday("Annual Bank Closing", provisional=True),
    date(2027, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti", provisional=True),
}

_M = Closure.MORNING
COMMODITY_HOLIDAYS: Final[dict[date, Holiday]] = {
    date(2026, 1, 1): Holiday("New Year", Closure.EVENING),
    date(2026, 1, 15): Holiday(_MUNICIPAL, _M),
    date(2026, 1, 26): Holiday("Republic Day"),
    date(2026, 3, 3): Holiday("Holi", _M),
    date(2026, 3, 26): Holiday("Shri Ram Navami", _M),
    date(2026, 3, 31): Holiday("Shri Mahavir Jayanti", _M),
    date(2026, 4, 3): Holiday("Good Friday"),
    date(2026, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti", _M),
    date(2026, 5, 1): Holiday("Maharashtra Day", _M),
    date(2026, 5, 28): Holiday("Bakri Id", _M),
    date(2026, 6, 26): Holiday("Muharram", _M),
    date(2026, 9, 14): Holiday("Ganesh Chaturthi", _M),
    date(2026, 10, 2): Holiday("Mahatma Gandhi Jayanti"),
    date(2026, 10, 20): Holiday("Dussehra", _M),
    date(2026, 11, 10): Holiday("Diwali-Balipratipada", _M),
    date(2026, 11, 24): Holiday("Prakash Gurpurb Sri Guru Nanak Dev", _M),
    date(2026, 12, 25): Holiday("Christmas"),
    # 2027, provisional: Republic Day closes both sessions every year;
    # Ambedkar Jayanti the morning one.
    date(2027, 1, 26): Holiday("Republic Day", provisional=True),
    date(2027, 4, 14): Holiday("Dr. Baba Saheb Ambedkar Jayanti", _M, provisional=True),
}

HOLIDAYS: Final[dict[Market, dict[date, Holiday]]] = {
    Market.EQUITY: EQUITY_HOLIDAYS,
    Market.CURRENCY: CURRENCY_HOLIDAYS,
    Market.COMMODITY: COMMODITY_HOLIDAYS,
}

# The years whose holidays are here (2027's provisionally); outside them only
# weekends are known.
YEARS: Final = frozenset({2026, 2027})
