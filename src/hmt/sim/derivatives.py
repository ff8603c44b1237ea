"""Index futures and options on NFO, generated around the simulator's date and index levels.

NIFTY (on NIFTY 50) and BANKNIFTY (on NIFTY BANK), as Kite's dump lists them:
- lot sizes 65 and 30: NSE circular NSE/FAOP/70616 (October 2025), in force
  from the January 2026 contracts (NIFTY 75 -> 65, BANKNIFTY 35 -> 30); the
  fixtures document no current lot size (their BANKNIFTY row of 2018 says 40);
- tick 0.05 for every contract (the fixture's NFO rows);
- expiries on Tuesday (NSE's expiry day since 1 September 2025): NIFTY has
  weekly options, every Tuesday, and monthly contracts on the month's last
  Tuesday; BANKNIFTY has monthly contracts only (SEBI's one-weekly-index rule,
  November 2024). A holiday moves a real expiry to the trading day before;
  that is not modelled here;
- symbols in Kite's forms: futures `NIFTY26DECFUT`, monthly options
  `NIFTY26DEC25000CE`, weekly options `NIFTY26D0825000CE` (year, month as
  1-9/O/N/D, day);
- strikes: the index's start price rounded to the strike step, +-STRIKES_EACH_SIDE
  steps; start prices: futures at the index plus carry, options at a
  Black-Scholes value (no rates) on the tick grid. The simulated previous
  close only, not market data.

Tokens follow Kite's rule (exchange_token << 8 | 2); the exchange tokens are
numbered in a fixed order from a base per underlying, so one date always
gives the same tokens.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from hmt.sim.universe import DEFAULT_INSTRUMENTS, NFO_SEGMENT, Instrument, Universe

TUESDAY = 1
STRIKES_EACH_SIDE = 10
FUTURE_MONTHS = 3
OPTION_TICK = 5  # 0.05 in paise
CARRY = 0.06  # a year's cost of carry in the futures' start price
MONTH_CODES = "123456789OND"  # Kite's weekly-symbol month letters


@dataclass(frozen=True, slots=True)
class Underlying:
    """An index and the contract family NSE lists on it."""

    symbol: str  # the F&O symbol: NIFTY, BANKNIFTY
    index: str  # the index's tradingsymbol: NIFTY 50, NIFTY BANK
    lot_size: int
    strike_step: int  # rupees
    weekly: bool  # weekly options besides the monthly ones
    volatility: float
    token_base: int  # first exchange token of its contracts


UNDERLYINGS = (
    Underlying("NIFTY", "NIFTY 50", 65, 50, True, 0.13, 2_000_000),
    Underlying("BANKNIFTY", "NIFTY BANK", 30, 100, False, 0.15, 2_100_000),
)
LOT_SIZES = {u.symbol: u.lot_size for u in UNDERLYINGS}


def last_tuesday(year: int, month: int) -> date:
    """The month's last Tuesday: NSE's monthly expiry day."""
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - TUESDAY) % 7)


def monthly_expiries(day: date, count: int) -> list[date]:
    """The next `count` monthly expiries on or after `day`."""
    found: list[date] = []
    year, month = day.year, day.month
    while len(found) < count:
        expiry = last_tuesday(year, month)
        if expiry >= day:
            found.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def option_expiries(day: date, weekly: bool) -> list[date]:
    """Listed option expiries: the next two Tuesdays and the monthly after them (weekly
    families), or the next two monthlies."""
    monthlies = monthly_expiries(day, 2)
    if not weekly:
        return monthlies
    first = day + timedelta(days=(TUESDAY - day.weekday()) % 7)
    weeks = [first, first + timedelta(days=7)]
    return sorted({*weeks, *(m for m in monthlies[:1])})


def _is_monthly(expiry: date) -> bool:
    return expiry == last_tuesday(expiry.year, expiry.month)


def future_symbol(symbol: str, expiry: date) -> str:
    return f"{symbol}{expiry:%y}{expiry:%b}".upper() + "FUT"


def option_symbol(symbol: str, expiry: date, strike: int, kind: str) -> str:
    """Kite's option symbol: monthly `NIFTY26DEC25000CE`, weekly `NIFTY26D0825000CE`."""
    if _is_monthly(expiry):
        return f"{symbol}{expiry:%y}{expiry:%b}".upper() + f"{strike}{kind}"
    return f"{symbol}{expiry:%y}{MONTH_CODES[expiry.month - 1]}{expiry:%d}{strike}{kind}"


def _norm(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def option_value(spot: float, strike: float, years: float, vol: float, kind: str) -> float:
    """Black-Scholes with no rates: a plausible premium, not a price anyone quoted."""
    spread = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + spread * spread / 2) / spread
    d2 = d1 - spread
    call = spot * _norm(d1) - strike * _norm(d2)
    return call if kind == "CE" else call - spot + strike


def _grid(rupees: float) -> int:
    return max(OPTION_TICK, round(rupees * 100 / OPTION_TICK) * OPTION_TICK)


def _contracts(u: Underlying, index: Instrument, day: date) -> list[Instrument]:
    spot = index.close / index.divisor
    made: list[Instrument] = []

    def add(symbol: str, kind: str, expiry: date, strike: str, close: int, vol: float) -> None:
        made.append(
            Instrument(
                u.token_base + len(made),
                symbol,
                u.symbol,
                OPTION_TICK,
                close,
                vol,
                0.5,
                segment=NFO_SEGMENT,
                lot_size=u.lot_size,
                exchange="NFO",
                kind=kind,
                expiry=expiry.isoformat(),
                strike=strike,
            )
        )

    for expiry in monthly_expiries(day, FUTURE_MONTHS):
        years = ((expiry - day).days + 0.25) / 365
        close = _grid(spot * (1 + CARRY * years))
        add(future_symbol(u.symbol, expiry), "FUT", expiry, "0.0", close, u.volatility)
    atm = round(spot / u.strike_step) * u.strike_step
    strikes = [atm + k * u.strike_step for k in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1)]
    for expiry in option_expiries(day, u.weekly):
        years = ((expiry - day).days + 0.25) / 365
        for strike in strikes:
            for kind in ("CE", "PE"):
                value = option_value(spot, strike, years, u.volatility, kind)
                add(
                    option_symbol(u.symbol, expiry, strike, kind),
                    kind,
                    expiry,
                    f"{strike}.0",
                    _grid(value),
                    0.60,
                )
    return made


def index_derivatives(day: date, instruments: Iterable[Instrument]) -> tuple[Instrument, ...]:
    """Futures and options on every listed index that has an underlying here, as of `day`."""
    indices = {i.tradingsymbol: i for i in instruments if i.is_index}
    made: list[Instrument] = []
    for u in UNDERLYINGS:
        index = indices.get(u.index)
        if index is not None:
            made += _contracts(u, index, day)
    return tuple(made)


def standard_universe(day: date) -> Universe:
    """The simulator's default: the built-in instruments plus index F&O as of `day`."""
    return Universe((*DEFAULT_INSTRUMENTS, *index_derivatives(day, DEFAULT_INSTRUMENTS)))
