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


class Exchange(StrEnum):
    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    CDS = "CDS"
    BCD = "BCD"
    MCX = "MCX"
    NCO = "NCO"


class Leg(IntEnum):
    """Which leg of a trigger: a single has only FIRST; an oco's FIRST is the stop-loss."""

    FIRST = 1
    SECOND = 2


class Direction(StrEnum):
    """Which way the price must move for a leg to fire."""

    AT_OR_ABOVE = "at_or_above"
    AT_OR_BELOW = "at_or_below"
