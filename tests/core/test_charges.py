"""Zerodha's charges: known answers worked from the published schedule (docs/backtest.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hmt.core.charges import NONE, charged_as, charges, schedule_on
from hmt.core.charges_data import OCT_2024, Column
from hmt.core.types import Exchange, Product, Side


def test_the_segment_follows_exchange_product_and_kind() -> None:
    assert charged_as(Exchange.NSE, Product.CNC, "EQ") is Column.DELIVERY
    assert charged_as(Exchange.BSE, Product.MIS, "EQ") is Column.INTRADAY
    assert charged_as(Exchange.NFO, Product.NRML, "FUT") is Column.FUTURES
    assert charged_as(Exchange.NFO, Product.MIS, "CE") is Column.OPTIONS
    assert charged_as(Exchange.MCX, Product.NRML, "FUT") is None


def test_the_schedule_in_force_is_the_last_effective() -> None:
    assert schedule_on(date(2026, 12, 1)) is OCT_2024
    assert schedule_on(date(2020, 1, 1)) is OCT_2024  # the oldest held, for earlier days


def round_trip(column: Column, exchange: Exchange, buy: str, sell: str) -> dict[str, Decimal]:
    total = NONE
    for side, turnover in ((Side.BUY, Decimal(buy)), (Side.SELL, Decimal(sell))):
        total = total + charges(OCT_2024, column, exchange, side, turnover)
    return {
        "brokerage": total.brokerage,
        "stt": total.stt,
        "exchange": total.exchange,
        "sebi": total.sebi,
        "gst": total.gst,
        "stamp": total.stamp,
        "total": total.total,
    }


def test_intraday_round_trip_of_the_calculators_default_inputs() -> None:
    """Zerodha's brokerage calculator opens on intraday NSE, buy 1000, sell 1100, 400
    shares; worked by hand from the published rates: brokerage 0.03% or ₹20 a side,
    STT 0.025% of the sell (₹110), NSE 0.00297% of ₹8,40,000 (₹24.95), SEBI ₹10/crore
    (₹0.84), GST 18% of brokerage + exchange + SEBI, stamp 0.003% of the buy (₹12)."""
    assert round_trip(Column.INTRADAY, Exchange.NSE, "400000", "440000") == {
        "brokerage": Decimal("40.00"),
        "stt": Decimal("110.00"),
        "exchange": Decimal("24.95"),
        "sebi": Decimal("0.84"),
        "gst": Decimal("11.84"),
        "stamp": Decimal("12.00"),
        "total": Decimal("199.63"),
    }


def test_delivery_has_no_brokerage_and_stt_on_both_sides() -> None:
    # buy 100 @ 1000, sell 100 @ 1100: STT 0.1% of each side (100 + 110), stamp 0.015%
    # of the buy (15), NSE 0.00297% of 2,10,000 (6.24), SEBI 0.21.
    got = round_trip(Column.DELIVERY, Exchange.NSE, "100000", "110000")
    assert got["brokerage"] == 0
    assert got["stt"] == Decimal("210.00")
    assert got["stamp"] == Decimal("15.00")
    assert got["exchange"] == Decimal("2.97") + Decimal("3.27")
    assert got["sebi"] == Decimal("0.10") + Decimal("0.11")
    assert got["gst"] == Decimal("0.55") + Decimal("0.61")


def test_options_pay_flat_brokerage_and_stt_on_the_sold_premium() -> None:
    # NIFTY options, 75 lots' worth: buy premium 100 x 750, sell 120 x 750.
    got = round_trip(Column.OPTIONS, Exchange.NFO, "75000", "90000")
    assert got["brokerage"] == Decimal("40.00")  # ₹20 per executed order
    assert got["stt"] == Decimal("90.00")  # 0.1% of the sold premium
    assert got["exchange"] == Decimal("26.27") + Decimal("31.53")  # 0.03503% of premium
    assert got["stamp"] == Decimal("2.25")  # 0.003% of the bought premium


def test_futures_cap_brokerage_at_20_and_charge_stt_on_the_sale() -> None:
    buy = charges(OCT_2024, Column.FUTURES, Exchange.NFO, Side.BUY, Decimal("1500000"))
    sell = charges(OCT_2024, Column.FUTURES, Exchange.NFO, Side.SELL, Decimal("50000"))
    assert (buy.brokerage, buy.stt, buy.stamp) == (Decimal("20.00"), 0, Decimal("30.00"))
    assert (sell.brokerage, sell.stt, sell.stamp) == (Decimal("15.00"), Decimal("10.00"), 0)
    assert buy.exchange == Decimal("25.95")  # 0.00173% of ₹15 lakh


def test_the_calculators_published_figures_for_its_default_inputs() -> None:
    """Zerodha's brokerage calculator, intraday NSE, buy 1000, sell 1100, 400 shares, as
    published when NSE's transaction charge was 0.00345% (quoted at
    https://heidelbergsusa.com/calculate-intraday-charges-zerodha/35369226): brokerage 40,
    STT 110, exchange 28.98, GST 12.42, SEBI 0.99 (shown with its GST), stamp 12, total
    204.39. The same schedule with that one rate gives the same figures (SEBI and the GST
    on it summed, as the calculator split them differently)."""
    then = OCT_2024.rates[Column.INTRADAY]._replace(
        exchange={Exchange.NSE: Decimal("0.00345") / 100}
    )
    schedule = OCT_2024._replace(rates={**OCT_2024.rates, Column.INTRADAY: then})
    total = NONE
    for side, turnover in ((Side.BUY, Decimal(400_000)), (Side.SELL, Decimal(440_000))):
        total = total + charges(schedule, Column.INTRADAY, Exchange.NSE, side, turnover)
    assert (total.brokerage, total.stt, total.exchange, total.stamp) == (
        Decimal("40.00"), Decimal("110.00"), Decimal("28.98"), Decimal("12.00"),
    )  # fmt: skip
    assert total.sebi + total.gst == Decimal("12.42") + Decimal("0.99")
    assert total.total == Decimal("204.39")
