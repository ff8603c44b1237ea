"""Kite order forms and order-book rows, checked against the real fixtures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.rules import order_for
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
    TriggerId,
    Validity,
)
from hmt.kite.orders import only_our_tags, order_form, report_from_row
from hmt.kite.tags import broker_tag
from tests.support.factories import make_oco, make_trigger
from tests.support.services import kite_fixture


def test_market_order_form_carries_protection_and_tag() -> None:
    """A MARKET order always carries market_protection (Kite rejects it without) and our tag."""
    trigger = make_trigger(quantity=7)
    form = order_form(
        order_for(trigger, Leg.FIRST, broker_tag(trigger.id, Leg.FIRST)), market_protection=-1
    )
    assert form == {
        "tradingsymbol": "INFY",
        "exchange": "NSE",
        "transaction_type": "BUY",
        "order_type": "MARKET",
        "quantity": "7",
        "product": "CNC",
        "validity": "DAY",
        "tag": broker_tag(trigger.id, Leg.FIRST),
        "market_protection": "-1",
    }


def test_limit_order_form_sends_rupees_from_wire_units() -> None:
    """A LIMIT leg's price goes out in rupees, exactly, with no market_protection."""
    oco = make_oco(
        Side.SELL,
        240_000,
        280_000,
        order_type=OrderType.LIMIT,
        limit_price_1=239_995,
        limit_price_2=280_050,
    )
    form = order_form(
        order_for(oco, Leg.SECOND, broker_tag(oco.id, Leg.SECOND)), market_protection=-1
    )
    assert form["price"] == "2800.5"
    assert form["tag"] == broker_tag(oco.id, Leg.SECOND)
    assert "market_protection" not in form


@pytest.mark.parametrize(
    ("token", "exchange", "divisor", "units", "rupees"),
    [
        (412675, Exchange.CDS, 10_000_000, 831_234_567, "83.1234567"),
        ((1 << 8) | 6, Exchange.BCD, 10_000, 831_234, "83.1234"),
        (408065, Exchange.NSE, 10_000, 831_234, "83.1234"),  # the intent's divisor, not the token's
    ],
)
def test_order_prices_use_the_intents_divisor(
    token: int, exchange: Exchange, divisor: int, units: int, rupees: str
) -> None:
    """Limit and stop prices go out with the trigger's own divisor, whatever the token says."""
    trigger = make_trigger(
        instrument_token=token,
        exchange=exchange,
        order_type=OrderType.LIMIT,
        limit_price_1=units,
        price_divisor=divisor,
    )
    intent = order_for(trigger, Leg.FIRST, broker_tag(trigger.id, Leg.FIRST))
    assert intent.price_divisor == divisor
    assert order_form(intent, market_protection=-1)["price"] == rupees


def test_every_fixture_order_row_reads_back() -> None:
    """Every row of the real orders.json becomes a report with a string id and its tags."""
    rows = json.loads(kite_fixture("orders.json").read_text())["data"]
    reports = [report_from_row(row) for row in rows]
    assert len(reports) == len(rows) == 10
    by_id = {r.order_id: r for r in reports}
    # 19-digit ids survive as strings, beyond float precision.
    assert "1953341975595868160" in by_id
    assert by_id["1953341975595868160"].tags == ("mktp", "mktp:2.00")
    assert by_id["9000000000000000"].carries("connect test order2")
    assert by_id["9000000000000000"].carries("XXXXX")
    assert by_id["220524001859672"].rejected


@pytest.mark.parametrize("row", [None, [], {"status": "OPEN"}, {"order_id": None}])
def test_unreadable_rows_are_ambiguous(row: object) -> None:
    """A row without an order id cannot prove an order absent: it is an ambiguous answer."""
    with pytest.raises(BrokerError) as info:
        report_from_row(row)
    assert info.value.kind is ErrorKind.AMBIGUOUS


def test_only_our_tags_keeps_hmt_tags_and_drops_orders_without_one() -> None:
    """Kite's own `mktp` tags and orders placed elsewhere never reach reconciliation."""
    ours = broker_tag("0b6f3c2e-4b7d-4a8e-9a51-3f1d2c4b5a69", Leg.FIRST)
    mixed = OrderReport("1", "COMPLETE", "mktp", ("mktp", "mktp:2.00", ours))
    assert only_our_tags(mixed) == OrderReport("1", "COMPLETE", ours, (ours,))
    assert only_our_tags(OrderReport("2", "COMPLETE", "mktp", ("mktp", "mktp:2.00"))) is None
    assert only_our_tags(OrderReport("3", "OPEN", None)) is None
    assert only_our_tags(OrderReport("4", "OPEN", "HMTNOTOURS")) is None


def _intent(order_type: OrderType, **fields: Any) -> OrderIntent:
    """An NFO option order (divisor 100) of a v2 basket, as `orders_for` builds it."""
    base: dict[str, Any] = {
        "trigger_id": TriggerId("t-1"),
        "leg": Leg.FIRST,
        "tag": "HMTABCDEFGHIJKLMNOP1",
        "instrument_token": InstrumentToken(12073986),
        "exchange": Exchange.NFO,
        "tradingsymbol": "NIFTY26D0823800PE",
        "side": Side.BUY,
        "quantity": 65,
        "product": Product.NRML,
        "order_type": order_type,
        "limit_price": None,
        "price_divisor": 100,
    }
    base.update(fields)
    return OrderIntent(**base)


COMMON = {
    "tradingsymbol": "NIFTY26D0823800PE",
    "exchange": "NFO",
    "transaction_type": "BUY",
    "quantity": "65",
    "product": "NRML",
    "tag": "HMTABCDEFGHIJKLMNOP1",
}


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        (
            _intent(OrderType.SL, limit_price=12_050, trigger_price=12_000, position=1, basket=3),
            {"order_type": "SL", "validity": "DAY", "price": "120.5", "trigger_price": "120"},
        ),
        (
            _intent(OrderType.SL_M, trigger_price=9_995, validity=Validity.IOC),
            {
                "order_type": "SL-M",
                "validity": "IOC",
                "trigger_price": "99.95",
                "market_protection": "-1",
            },
        ),
        (
            _intent(OrderType.LIMIT, limit_price=5, validity=Validity.IOC),
            {"order_type": "LIMIT", "validity": "IOC", "price": "0.05"},
        ),
        (
            _intent(OrderType.MARKET, validity=Validity.IOC),
            {"order_type": "MARKET", "validity": "IOC", "market_protection": "-1"},
        ),
    ],
)
def test_v2_order_forms_are_pinned(intent: OrderIntent, expected: dict[str, str]) -> None:
    """SL carries price and trigger_price; SL-M trigger_price and protection; validity as set."""
    assert order_form(intent, market_protection=-1) == {**COMMON, **expected}


def test_stop_prices_use_the_intents_divisor() -> None:
    """A CDS stop goes out in rupees with the intent's 1e7 divisor, exactly."""
    intent = _intent(
        OrderType.SL,
        exchange=Exchange.CDS,
        limit_price=831_234_567,
        trigger_price=831_000_000,
        price_divisor=10_000_000,
    )
    form = order_form(intent, market_protection=-1)
    assert (form["price"], form["trigger_price"]) == ("83.1234567", "83.1")


@pytest.mark.parametrize(
    ("intent", "missing"),
    [
        (_intent(OrderType.SL, trigger_price=12_000), "limit price"),
        (_intent(OrderType.SL, limit_price=12_000), "trigger_price"),
        (_intent(OrderType.SL_M), "trigger_price"),
    ],
)
def test_stop_orders_without_their_prices_are_refused(intent: OrderIntent, missing: str) -> None:
    """A stop without the price its type needs never reaches Kite half-formed."""
    with pytest.raises(ValueError, match=missing):
        order_form(intent, market_protection=-1)
