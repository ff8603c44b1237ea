"""Kite's historical candles (`GET /instruments/historical/{token}/{interval}`) as core candles.

Kite answers `{"candles": [[timestamp, open, high, low, close, volume(, oi)], ...]}`
with timestamps like `2017-12-15T09:15:00+0530` and prices in rupees
(FACTS.md, fixtures/historical_minute.json). One request may span at most
`MAX_DAYS[interval]` days, and the endpoint allows 3 requests a second: a
longer range is fetched in pieces, a third of a second apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.calendar import IST
from hmt.core.candles import Candle
from hmt.core.errors import InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.prices import to_units
from hmt.kite.rest import KiteRest

INTERVALS = ("minute", "3minute", "5minute", "10minute", "15minute", "30minute", "60minute", "day")
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
PAUSE_S = 1 / 3  # the historical endpoint's 3 requests a second
_COLUMNS = ("timestamp", "open", "high", "low", "close")


class HistoricalError(ValueError):
    """A candle Kite sent that cannot be read: which one, which column, why."""


def parse_candles(data: Any, instrument: Instrument) -> list[Candle]:
    """The `data` of a historical answer as candles in wire units of `instrument`."""
    rows = data.get("candles") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise HistoricalError("the answer has no `candles` list")
    return [_candle(n, row, instrument) for n, row in enumerate(rows)]


def _candle(n: int, row: Any, instrument: Instrument) -> Candle:
    if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < 5:
        raise HistoricalError(f"candle {n}: not [timestamp, open, high, low, close, volume]")
    try:
        at = datetime.fromisoformat(str(row[0]))
    except ValueError:
        raise HistoricalError(f"candle {n}: timestamp {row[0]!r} is not a time") from None
    if at.utcoffset() is None:
        raise HistoricalError(f"candle {n}: timestamp {row[0]!r} has no offset")
    prices = []
    for k in range(1, 5):
        try:
            prices.append(to_units(Decimal(str(row[k])), instrument.price_divisor))
        except (InvalidOperation, InvalidTrigger) as error:
            raise HistoricalError(f"candle {n}: {_COLUMNS[k]} {row[k]!r}: {error}") from None
    # In IST, one zone object for every candle (the replay compares their times).
    candle = Candle(at.astimezone(IST), *prices)
    problem = candle.problem()
    if problem is not None:
        raise HistoricalError(f"candle {n} at {row[0]}: {problem}")
    return candle


def _kite_time(at: datetime) -> str:
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def pieces(interval: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into ranges one request may ask for."""
    span = timedelta(days=MAX_DAYS[interval])
    cuts = []
    at = start
    while at <= end:
        upto = min(at + span, end)
        cuts.append((at, upto))
        at = upto + timedelta(seconds=1)
    return cuts


async def fetch_candles(
    rest: KiteRest,
    instrument: Instrument,
    interval: str,
    start: datetime,
    end: datetime,
    *,
    pause: float = PAUSE_S,
) -> list[Candle]:
    """Every candle of `instrument` from `start` to `end`, in time order."""
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r}: one of {', '.join(INTERVALS)}")
    out: list[Candle] = []
    for n, (a, b) in enumerate(pieces(interval, start, end)):
        if n:
            await asyncio.sleep(pause)
        data = await rest.request(
            "GET",
            f"/instruments/historical/{int(instrument.id)}/{interval}",
            params={"from": _kite_time(a), "to": _kite_time(b)},
        )
        try:
            out += parse_candles(data, instrument)
        except HistoricalError as error:
            message = f"historical {instrument.tradingsymbol}: {error}"
            raise BrokerError(ErrorKind.FINAL, message) from None
    return out


class KiteHistory:
    """Kite's historical candles for the running hmt (the engine's `CandleSource`)."""

    def __init__(self, rest: KiteRest) -> None:
        self._rest = rest

    async def candles(
        self, instrument: Instrument, interval: str, start: datetime, end: datetime
    ) -> list[Candle]:
        return await fetch_candles(self._rest, instrument, interval, start, end)
