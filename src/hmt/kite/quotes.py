"""Kite's quote API for the day's high and low: GET /quote/ohlc, batched (FACTS.md 2.7).

In LTP mode ticks carry no day range, so after a blind spot the engine asks
for each watched instrument's OHLC here (`QuotePort`). Kite takes up to 1,000
instruments a request and one request a second (FACTS.md 2.4): a call with
more asks in batches, one second apart. Instruments are named as
EXCHANGE:TRADINGSYMBOL, found in the instrument master by token; REST prices
are rupees (floats), turned back into the instrument's wire units.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

import structlog

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.instruments import Instrument
from hmt.kite.rest import KiteRest

log = structlog.get_logger("hmt.kite.quotes")

OHLC_BATCH = 1000  # instruments per /quote/ohlc request
QUOTE_INTERVAL_S = 1.0  # Kite: 1 quote request a second

Lookup = Callable[[Collection[int]], Awaitable[Mapping[int, Instrument]]]


class KiteQuotes:
    """The engine's `QuotePort` on Kite's REST API."""

    def __init__(self, rest: KiteRest, instruments: Lookup, *, interval: float = QUOTE_INTERVAL_S):
        self._rest = rest
        self._instruments = instruments
        self._interval = interval

    async def day_ranges(self, tokens: Collection[int]) -> dict[int, tuple[int, int]]:
        """(high, low) in wire units per token Kite has a quote for; others are absent
        (an instrument the master does not list, or Kite leaves out)."""
        known = await self._instruments(tokens)
        by_key = {f"{i.exchange.value}:{i.tradingsymbol}": i for i in known.values()}
        keys = sorted(by_key)
        found: dict[int, tuple[int, int]] = {}
        for start in range(0, len(keys), OHLC_BATCH):
            if start:
                await asyncio.sleep(self._interval)
            chunk = keys[start : start + OHLC_BATCH]
            data = await self._rest.request("GET", "/quote/ohlc", params=[("i", k) for k in chunk])
            if not isinstance(data, dict):
                raise BrokerError(ErrorKind.AMBIGUOUS, "the quote answer is not an object")
            for key, row in data.items():
                instrument = by_key.get(key)
                parsed = None if instrument is None else _range(row, instrument.price_divisor)
                if instrument is not None and parsed is not None:
                    found[int(instrument.id)] = parsed
        return found


def _range(row: Any, divisor: int) -> tuple[int, int] | None:
    """(high, low) of one quote row in wire units; None if it has none (no trade yet)."""
    ohlc = row.get("ohlc") if isinstance(row, dict) else None
    if not isinstance(ohlc, dict):
        return None
    try:
        high = round(Decimal(str(ohlc["high"])) * divisor)
        low = round(Decimal(str(ohlc["low"])) * divisor)
    except (KeyError, ArithmeticError, ValueError):
        log.warning("quote_unreadable", row=str(row)[:200])
        return None
    return (high, low) if high > 0 and low > 0 else None
