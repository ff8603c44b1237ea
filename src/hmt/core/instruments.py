"""An instrument as the broker's master lists it: its id and the units of its prices.

Broker-neutral: the core never decodes a broker's instrument id. The broker
adapter reads its own instrument master (Kite: the daily `/instruments` dump)
and hands the core an `Instrument`, whose prices are in the same integer wire
units as the ticks and triggers of that instrument.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmt.core.types import Exchange, InstrumentToken


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable (or watch-only) instrument of one broker."""

    id: InstrumentToken  # the broker's numeric id (Kite: instrument_token)
    exchange: Exchange
    tradingsymbol: str
    price_divisor: int  # wire units per rupee
    tick_size: int  # in wire units; a price must be a multiple of it
    lot_size: int  # a quantity must be a multiple of it (1 for cash equity)
    tradable: bool = True  # False for indices: watched, never ordered


@dataclass(frozen=True, slots=True)
class Listing:
    """An instrument with what people search it by: its name and kind (EQ, FUT, CE, ...)."""

    instrument: Instrument
    name: str = ""
    kind: str = ""
