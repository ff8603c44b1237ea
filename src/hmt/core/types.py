"""Identifiers and the wire-visible enumerations shared by every layer."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NewType

TriggerId = NewType("TriggerId", str)
UserId = NewType("UserId", str)
InstrumentToken = NewType("InstrumentToken", int)


class TriggerType(StrEnum):
    SINGLE = "single"
    OCO = "oco"


class Side(StrEnum):
    """Kite's `transaction_type`."""

    BUY = "BUY"
    SELL = "SELL"


class Product(StrEnum):
    CNC = "CNC"
    MIS = "MIS"
    NRML = "NRML"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"  # stop-loss limit: price and trigger_price
    SL_M = "SL-M"  # stop-loss market: trigger_price only


class Validity(StrEnum):
    """Kite's order `validity`."""

    DAY = "DAY"
    IOC = "IOC"


class OnGap(StrEnum):
    """What a leg does when its price was crossed while the engine was blind (a missed touch)."""

    FIRE = "fire"  # place now: a stop-loss must not be skipped silently
    SKIP = "skip"  # record it and stay active


class Cause(StrEnum):
    """Why a leg fired."""

    PRICE = "price"  # a tick at or past the threshold
    TIME = "time"  # its time came
    GAP = "gap"  # a missed touch, found after a blind spot (on_gap fire)


class Exchange(StrEnum):
    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    CDS = "CDS"
    BCD = "BCD"
    MCX = "MCX"
    NCO = "NCO"


# A leg's basket holds at most this many orders (Zerodha's alerts allow 20 per alert).
MAX_BASKET = 20
# Instrument ids: Kite's tokens are 32-bit, Upstox's derived ids below 2^53 (exact in
# JSON and JavaScript; hmt.upstox.instruments). The broker's master or id rules decide.
MAX_INSTRUMENT_ID = 1 << 53


class Leg(IntEnum):
    """Which leg of a trigger: a single has only FIRST; an oco's FIRST is the stop-loss."""

    FIRST = 1
    SECOND = 2


class Direction(StrEnum):
    """Which way the price must move for a leg to fire."""

    AT_OR_ABOVE = "at_or_above"
    AT_OR_BELOW = "at_or_below"
