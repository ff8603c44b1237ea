"""Instrument search for the UI's forms, from the same instrument master the trigger checks use.

The master (`hmt.engine.instruments`) is the broker's daily dump, fetched once
a day and kept in memory; the search reads it, and so does every create and
edit (`resolve`). A Kite engine that trades linked Upstox accounts lists both
brokers' instruments in one master (docs/accounts.md, "Two brokers in one
process"): each result says its broker, and `broker=` keeps one broker's, since a
trigger's instruments must be its account's broker's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from hmt.api.auth import Caller
from hmt.api.runtime import runtime_of
from hmt.core.instruments import Listing
from hmt.core.types import Exchange
from hmt.engine.instruments import InstrumentUnavailable

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
    broker: str  # kite or upstox: whose instrument id this is

    @classmethod
    def of(cls, listing: Listing, broker: str) -> InstrumentOut:
        i = listing.instrument
        return cls(
            broker=broker,
            instrument_token=i.id,
            exchange=i.exchange.value,
            tradingsymbol=i.tradingsymbol,
            name=listing.name,
            tick_size=Decimal(i.tick_size) / i.price_divisor,
            lot_size=i.lot_size,
            instrument_type=listing.kind,
        )


def tradable(listings: Iterable[Listing], exchange: Exchange) -> list[Listing]:
    """The listings of `exchange` that can be ordered (indices cannot)."""
    return [i for i in listings if i.instrument.tradable and i.instrument.exchange is exchange]


def watchable(listings: Iterable[Listing], exchange: Exchange) -> list[Listing]:
    """The listings of `exchange` a trigger can watch: the tradable ones and its indices."""
    return [i for i in listings if i.instrument.exchange is exchange]


def search(listings: Sequence[Listing], query: str) -> list[Listing]:
    """Exact symbol first, then symbols starting with the query, then names containing it."""
    q = query.strip().upper()

    def symbol(i: Listing) -> str:
        return i.instrument.tradingsymbol

    exact = [i for i in listings if symbol(i) == q]
    prefix = [i for i in listings if symbol(i).startswith(q) and symbol(i) != q]
    named = [i for i in listings if q in i.name.upper() and not symbol(i).startswith(q)]
    prefix.sort(key=lambda i: (len(symbol(i)), symbol(i)))
    return (exact + prefix + named)[:MAX_RESULTS]


@router.get("", summary="Search the exchange's instruments by symbol or name")
async def find(
    request: Request,
    _caller: Caller,
    q: Annotated[str, Query(min_length=1, max_length=40)],
    exchange: Exchange = Exchange.NSE,
    indices: bool = False,
    broker: Literal["kite", "upstox"] | None = None,
) -> list[InstrumentOut]:
    """`indices=true` adds the exchange's indices: they can be watched, never ordered.
    `broker` keeps that broker's instruments only (a trigger's must be its account's)."""
    runtime = runtime_of(request)
    try:
        listings = await runtime.instruments.listings()
    except InstrumentUnavailable as error:
        raise HTTPException(502, str(error)) from None
    pool = watchable(listings, exchange) if indices else tradable(listings, exchange)
    if broker is not None:  # before the ranking, so the other broker's never crowd out 20
        pool = [i for i in pool if runtime.broker_of(i.instrument.id) == broker]
    return [InstrumentOut.of(i, runtime.broker_of(i.instrument.id)) for i in search(pool, q)]
