"""Zerodha's published charges, as data: each schedule with the day it took effect
and where it was read (docs/backtest.md "Charges").

Rates are fractions of turnover (Decimal, exact): 0.03% is Decimal("0.0003").
Only equity cash (NSE, BSE) and equity F&O (NFO, BFO) are covered; another
exchange has no schedule here and the backtest reports its charges as unknown.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Final, NamedTuple

from hmt.core.types import Exchange


class Column(StrEnum):
    """Which of Zerodha's columns an order is charged under."""

    DELIVERY = "equity_delivery"
    INTRADAY = "equity_intraday"
    FUTURES = "futures"
    OPTIONS = "options"


class Rates(NamedTuple):
    """One column of the schedule."""

    brokerage: Decimal  # a fraction of turnover, capped at `brokerage_cap` (rupees)
    brokerage_cap: Decimal
    stt_buy: Decimal
    stt_sell: Decimal
    stamp_buy: Decimal
    exchange: dict[Exchange, Decimal]  # exchange transaction charge per exchange


class Schedule(NamedTuple):
    effective: date
    sources: tuple[str, ...]
    rates: dict[Column, Rates]
    sebi: Decimal  # ₹10 per crore
    gst: Decimal  # on brokerage + SEBI + exchange charges


def _pct(text: str) -> Decimal:
    return Decimal(text) / 100


# From 1 October 2024: STT on F&O raised (options 0.0625% -> 0.1% of premium,
# futures 0.0125% -> 0.02%) and the exchanges' uniform transaction charges
# (NSE cash 0.00297%, futures 0.00173%, options 0.03503% of premium).
OCT_2024: Final = Schedule(
    effective=date(2024, 10, 1),
    sources=(
        "https://zerodha.com/charges",
        "https://nithinkamath.me/blog/impact-of-revision-in-exchange-transaction-charges-and-stt",
        "https://select.finology.in/articles/broker/how-to-use-zerodha-brokerage-calculator",
        "https://support.zerodha.com/category/account-opening/charges-at-zerodha/articles/"
        "what-are-the-various-statutory-charges-like-stamp-duty-and-taxes-etc",
    ),
    rates={
        Column.DELIVERY: Rates(
            brokerage=Decimal(0),
            brokerage_cap=Decimal(0),
            stt_buy=_pct("0.1"),
            stt_sell=_pct("0.1"),
            stamp_buy=_pct("0.015"),
            exchange={Exchange.NSE: _pct("0.00297"), Exchange.BSE: _pct("0.00375")},
        ),
        Column.INTRADAY: Rates(
            brokerage=_pct("0.03"),
            brokerage_cap=Decimal(20),
            stt_buy=Decimal(0),
            stt_sell=_pct("0.025"),
            stamp_buy=_pct("0.003"),
            exchange={Exchange.NSE: _pct("0.00297"), Exchange.BSE: _pct("0.00375")},
        ),
        Column.FUTURES: Rates(
            brokerage=_pct("0.03"),
            brokerage_cap=Decimal(20),
            stt_buy=Decimal(0),
            stt_sell=_pct("0.02"),
            stamp_buy=_pct("0.002"),
            exchange={Exchange.NFO: _pct("0.00173"), Exchange.BFO: Decimal(0)},
        ),
        Column.OPTIONS: Rates(
            # Flat ₹20 per executed order: a 100% rate capped at 20 is always 20
            # on any premium turnover of ₹20 or more.
            brokerage=Decimal(1),
            brokerage_cap=Decimal(20),
            stt_buy=Decimal(0),
            stt_sell=_pct("0.1"),
            stamp_buy=_pct("0.003"),
            exchange={Exchange.NFO: _pct("0.03503"), Exchange.BFO: _pct("0.0325")},
        ),
    },
    sebi=Decimal(10) / Decimal(10_000_000),
    gst=Decimal("0.18"),
)

# Oldest first; `schedule_on` takes the last one in force.
SCHEDULES: Final = (OCT_2024,)
