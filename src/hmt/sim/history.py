"""Historical candles the simulator serves (`GET /instruments/historical/{token}/{interval}`).

Deterministic for the simulator's seed: each instrument's trading day is a
seeded random walk of its own (seed, token, day), on the instrument's tick
grid, started from its previous close moved by a seeded overnight gap. The
same request to a simulator of the same seed always answers the same candles,
whatever was asked before; a day's minute candles do not depend on the range
requested. Longer intervals are the minute candles folded together, as Kite
builds them: from each session's open, the last one cut at the close.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from hmt.core.calendar import IST, sessions
from hmt.sim.prices import TRADING_SECONDS_PER_YEAR
from hmt.sim.universe import Instrument

# Kite's intervals (FACTS: the historical API) in minutes; "day" is one candle a day.
INTERVALS = {
    "minute": 1,
    "3minute": 3,
    "5minute": 5,
    "10minute": 10,
    "15minute": 15,
    "30minute": 30,
    "60minute": 60,
    "day": 0,
}
# The longest range one request may span, per interval, in days (Kite's limits).
MAX_DAYS = {
    "minute": 60,
    "3minute": 100,
    "5minute": 100,
    "10minute": 100,
    "15minute": 200,
    "30minute": 200,
    "60minute": 400,
    "day": 2000,
}
STEPS = 20  # walk steps per minute


class Bar(NamedTuple):
    at: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


def minute_bars(instrument: Instrument, seed: int, day: date) -> list[Bar]:
    """One instrument's minute candles on `day` (none on a day its exchange is shut)."""
    exchange = "NSE" if instrument.is_index else instrument.exchange
    hours = sessions(exchange, day)
    if not hours:
        return []
    rng = random.Random(f"{seed}:{instrument.token}:{day.isoformat()}")
    tick = max(instrument.tick, 1)
    sigma = instrument.volatility * math.sqrt(60.0 / STEPS / TRADING_SECONDS_PER_YEAR)
    gap = instrument.volatility * math.sqrt(1.0 / 252) * rng.gauss(0.0, 1.0) * 0.2
    price = max(tick, round(instrument.close * math.exp(gap) / tick) * tick)
    lot = max(instrument.lot_size, 1)
    bars = []
    for opens, closes in hours:
        at = opens
        while at < closes:
            o = high = low = price
            for _ in range(STEPS):
                moved = price * math.exp(sigma * rng.gauss(0.0, 1.0) - sigma * sigma / 2)
                price = max(tick, round(moved / tick) * tick)
                high, low = max(high, price), min(low, price)
            volume = 0 if instrument.is_index else lot * rng.randint(1, 400)
            bars.append(Bar(at, o, high, low, price, volume))
            at += timedelta(minutes=1)
    return bars


def _fold(bars: list[Bar], at: datetime) -> Bar:
    return Bar(
        at,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum(b.volume for b in bars),
    )


def candles(
    instrument: Instrument, seed: int, interval: str, start: datetime, end: datetime
) -> list[Bar]:
    """Candles of `interval` whose start lies in [start, end] (both with a zone)."""
    minutes = INTERVALS[interval]
    out: list[Bar] = []
    day, last = start.astimezone(IST).date(), end.astimezone(IST).date()
    while day <= last:
        bars = minute_bars(instrument, seed, day)
        if bars and minutes == 0:
            out.append(_fold(bars, datetime.combine(day, time(0), IST)))
        elif bars:
            bucket: list[Bar] = []
            opened = bars[0].at
            for bar in bars:
                if bucket and (bar.at - opened) // timedelta(minutes=minutes) != (
                    bucket[0].at - opened
                ) // timedelta(minutes=minutes):
                    out.append(_fold(bucket, bucket[0].at))
                    bucket = []
                bucket.append(bar)
            if bucket:
                out.append(_fold(bucket, bucket[0].at))
        day += timedelta(days=1)
    return [bar for bar in out if start <= bar.at <= end]
