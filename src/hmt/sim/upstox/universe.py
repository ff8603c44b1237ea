"""The simulator's Upstox instruments: a small, generated master in Upstox's JSON format.

Generated for hmt, not copied from Upstox (no real Upstox master ships with
hmt): the fields and units follow docs/upstox/FACTS.md 4 (tick_size in paise).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

INSTRUMENTS: list[dict[str, Any]] = [
    {
        "segment": "NSE_EQ",
        "name": "RELIANCE INDUSTRIES LTD",
        "exchange": "NSE",
        "isin": "INE002A01018",
        "instrument_type": "EQ",
        "instrument_key": "NSE_EQ|INE002A01018",
        "lot_size": 1,
        "freeze_quantity": 100000.0,
        "exchange_token": "2885",
        "tick_size": 5.0,
        "trading_symbol": "RELIANCE",
        "short_name": "RELIANCE",
        "last_price": 2500.0,
    },
    {
        "segment": "NSE_EQ",
        "name": "STATE BANK OF INDIA",
        "exchange": "NSE",
        "isin": "INE062A01020",
        "instrument_type": "EQ",
        "instrument_key": "NSE_EQ|INE062A01020",
        "lot_size": 1,
        "freeze_quantity": 250000.0,
        "exchange_token": "3045",
        "tick_size": 5.0,
        "trading_symbol": "SBIN",
        "short_name": "SBIN",
        "last_price": 800.0,
    },
    {
        "segment": "NSE_FO",
        "name": "NIFTY",
        "exchange": "NSE",
        "instrument_type": "FUT",
        "instrument_key": "NSE_FO|43919",
        "lot_size": 75,
        "freeze_quantity": 1800.0,
        "exchange_token": "43919",
        "tick_size": 10.0,
        "trading_symbol": "NIFTY FUT 30 DEC 26",
        "underlying_key": "NSE_INDEX|Nifty 50",
        "expiry": 1798540200000,
        "last_price": 24200.0,
    },
    {
        "segment": "NCD_FO",
        "name": "USDINR",
        "exchange": "NSE",
        "instrument_type": "FUT",
        "instrument_key": "NCD_FO|1234",
        "lot_size": 1,
        "freeze_quantity": 10000.0,
        "exchange_token": "1234",
        "tick_size": 0.25,
        "trading_symbol": "USDINR FUT 29 DEC 26",
        "expiry": 1798540200000,
        "last_price": 84.5,
    },
    {
        "segment": "NSE_INDEX",
        "name": "Nifty 50",
        "exchange": "NSE",
        "instrument_type": "INDEX",
        "instrument_key": "NSE_INDEX|Nifty 50",
        "exchange_token": "Nifty 50",
        "trading_symbol": "NIFTY",
        "last_price": 24150.0,
    },
]


def master_json(rows: list[dict[str, Any]] | None = None) -> bytes:
    """The master as Upstox serves it (`rows`, else INSTRUMENTS): a JSON array, gzipped."""
    return gzip.compress(json.dumps(INSTRUMENTS if rows is None else rows).encode(), mtime=0)
