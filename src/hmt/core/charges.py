"""The charges of one executed order under a Zerodha schedule (`charges_data`).

Each component is in rupees, rounded to the paisa (half up) as a contract
note shows it; STT is rounded to the rupee, as Zerodha states it is. A
schedule is chosen by the trade's day: the last one in force then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from hmt.core.charges_data import SCHEDULES, Column, Schedule
from hmt.core.types import Exchange, Product, Side

_PAISA = Decimal("0.01")
_RUPEE = Decimal(1)
_CASH = frozenset({Exchange.NSE, Exchange.BSE})
_FNO = frozenset({Exchange.NFO, Exchange.BFO})


@dataclass(frozen=True, slots=True)
class Charges:
    """What one executed order cost beyond its price, in rupees."""

    brokerage: Decimal
    stt: Decimal
    exchange: Decimal
    sebi: Decimal
    gst: Decimal
    stamp: Decimal

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.sebi + self.gst + self.stamp

    def __add__(self, other: Charges) -> Charges:
        return Charges(
            self.brokerage + other.brokerage,
            self.stt + other.stt,
            self.exchange + other.exchange,
            self.sebi + other.sebi,
            self.gst + other.gst,
            self.stamp + other.stamp,
        )


NONE = Charges(*(Decimal("0.00"),) * 6)


def charged_as(exchange: Exchange, product: Product, kind: str) -> Column | None:
    """The schedule's column for an order; None where no schedule is held (MCX, CDS)."""
    if exchange in _CASH:
        return Column.DELIVERY if product is Product.CNC else Column.INTRADAY
    if exchange in _FNO:
        return Column.OPTIONS if kind in ("CE", "PE") else Column.FUTURES
    return None


def schedule_on(day: date) -> Schedule:
    """The schedule in force on `day` (the oldest held, for a day before it)."""
    chosen = SCHEDULES[0]
    for schedule in SCHEDULES:
        if schedule.effective <= day:
            chosen = schedule
    return chosen


def _round(value: Decimal, unit: Decimal = _PAISA) -> Decimal:
    return value.quantize(unit, rounding=ROUND_HALF_UP)


def charges(
    schedule: Schedule, column: Column, exchange: Exchange, side: Side, turnover: Decimal
) -> Charges:
    """The charges of one executed order of `turnover` rupees (price x quantity;
    an option's premium x quantity)."""
    rates = schedule.rates[column]
    brokerage = _round(min(turnover * rates.brokerage, rates.brokerage_cap))
    stt_rate = rates.stt_buy if side is Side.BUY else rates.stt_sell
    stt = _round(turnover * stt_rate, _RUPEE).quantize(_PAISA)
    exchange_charge = _round(turnover * rates.exchange.get(exchange, Decimal(0)))
    sebi = _round(turnover * schedule.sebi)
    gst = _round((brokerage + sebi + exchange_charge) * schedule.gst)
    stamp = _round(turnover * rates.stamp_buy) if side is Side.BUY else Decimal("0.00")
    return Charges(brokerage, stt, exchange_charge, sebi, gst, stamp)
