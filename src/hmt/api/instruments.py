"""Instrument search for the UI's forms: Kite's instrument dump, fetched once a day, searched here.

Kite publishes the dump (GET /instruments/{exchange}, CSV) once a day; the
whole NSE list is a few MB, so it is fetched through the runtime's broker
client on the first search of the day and kept in memory.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from hmt.api.auth import Caller
from hmt.api.runtime import runtime_of
from hmt.core.broker import BrokerError
from hmt.core.types import Exchange

router = APIRouter(prefix="/instruments", tags=["instruments"])
MAX_RESULTS = 20


class InstrumentOut(BaseModel):
    instrument_token: int
    exchange: str
    tradingsymbol: str
    name: str
    tick_size: Decimal
    lot_size: int
    instrument_type: str


@dataclass
class _Day:
    on: date
    instruments: list[InstrumentOut]


class InstrumentCache:
    """Each exchange's dump for the current day (IST dates change at 18:30 UTC; UTC is close
    enough for a search list: Kite refreshes it early in the morning)."""

    def __init__(self) -> None:
        self._days: dict[str, _Day] = {}
        self._lock = asyncio.Lock()

    async def get(self, request: Request, exchange: str) -> list[InstrumentOut]:
        today = datetime.now(UTC).date()
        async with self._lock:
            day = self._days.get(exchange)
            if day is None or day.on != today:
                text = await runtime_of(request).rest.csv(f"/instruments/{exchange}")
                day = _Day(today, parse_dump(text))
                self._days[exchange] = day
        return day.instruments


def parse_dump(text: str) -> list[InstrumentOut]:
    """The rows of a Kite instrument dump that can be traded; malformed rows are skipped."""
    found = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            item = InstrumentOut(
                instrument_token=int(row["instrument_token"]),
                exchange=row["exchange"],
                tradingsymbol=row["tradingsymbol"],
                name=row.get("name") or "",
                tick_size=Decimal(row.get("tick_size") or "0"),
                lot_size=int(row.get("lot_size") or 0),
                instrument_type=row.get("instrument_type") or "",
            )
        except (KeyError, ValueError, InvalidOperation, TypeError):
            continue
        if item.tick_size > 0:  # indices (tick 0) cannot be ordered
            found.append(item)
    return found


def search(instruments: list[InstrumentOut], query: str) -> list[InstrumentOut]:
    """Exact symbol first, then symbols starting with the query, then names containing it."""
    q = query.strip().upper()
    exact = [i for i in instruments if i.tradingsymbol == q]
    prefix = [i for i in instruments if i.tradingsymbol.startswith(q) and i.tradingsymbol != q]
    named = [i for i in instruments if q in i.name.upper() and not i.tradingsymbol.startswith(q)]
    prefix.sort(key=lambda i: (len(i.tradingsymbol), i.tradingsymbol))
    return (exact + prefix + named)[:MAX_RESULTS]


@router.get("", summary="Search the exchange's instruments by symbol or name")
async def find(
    request: Request,
    _caller: Caller,
    q: Annotated[str, Query(min_length=1, max_length=40)],
    exchange: Exchange = Exchange.NSE,
) -> list[InstrumentOut]:
    cache: InstrumentCache | None = getattr(request.app.state, "instruments", None)
    if cache is None:  # one per app: each runtime has its own broker
        cache = request.app.state.instruments = InstrumentCache()
    try:
        instruments = await cache.get(request, exchange.value)
    except BrokerError as error:
        raise HTTPException(502, f"the broker's instrument list is unavailable: {error}") from None
    return search(instruments, q)
