"""A v2 trigger's legs: every rule names the field as the v2 request spells it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hmt.core.instruments import Instrument
from hmt.core.legs import far_side
from hmt.core.model import LegSpec, OrderSpec, Trigger
from hmt.core.types import (
    Direction,
    Exchange,
    InstrumentToken,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.core.validation import check

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
NIFTY = Instrument(InstrumentToken(256265), Exchange.NSE, "NIFTY 50", 100, 5, 0, tradable=False)
PUT = Instrument(InstrumentToken(12073986), Exchange.NFO, "NIFTYPE", 100, 5, 75)
INFY = Instrument(InstrumentToken(408065), Exchange.NSE, "INFY", 100, 5, 1)
MASTER = {i.id: i for i in (NIFTY, PUT, INFY)}
UP, DOWN = Direction.AT_OR_ABOVE, Direction.AT_OR_BELOW


def order(instrument: Instrument = PUT, **fields: Any) -> OrderSpec:
    values: dict[str, Any] = {
        "instrument_token": instrument.id,
        "exchange": instrument.exchange,
        "tradingsymbol": instrument.tradingsymbol,
        "side": Side.BUY,
        "quantity": 75,
        "product": Product.NRML,
        "order_type": OrderType.MARKET,
        "price_divisor": instrument.price_divisor,
        **fields,
    }
    return OrderSpec(**values)


def v2(
    *legs: LegSpec,
    thresholds: tuple[int, ...] = (2_380_000,),
    watch: Instrument | None = NIFTY,
    **fields: Any,
) -> Trigger:
    """A v2 trigger whose v1 fields mirror its first leg's first order, as the API builds it."""
    legs = legs or (LegSpec(direction=DOWN, orders=(order(),)),)
    head = legs[0].orders[0] if legs[0].orders else order()
    values: dict[str, Any] = {
        "id": TriggerId("00000000-0000-4000-8000-000000000001"),
        "user_id": UserId("alice"),
        "instrument_token": head.instrument_token,
        "exchange": head.exchange,
        "tradingsymbol": head.tradingsymbol,
        "trigger_type": TriggerType.SINGLE if len(legs) == 1 else TriggerType.OCO,
        "side": head.side,
        "trigger_price_1": thresholds[0],
        "trigger_price_2": thresholds[1] if len(thresholds) > 1 else None,
        "quantity": head.quantity,
        "product": head.product,
        "order_type": head.order_type,
        "limit_price_1": head.price,
        "price_divisor": head.price_divisor,
        "watch_token": None if watch is None else watch.id,
        "leg_specs": legs,
        **fields,
    }
    return Trigger(**values)


def rules(trigger: Trigger) -> set[tuple[str, str]]:
    return {(e.field, e.rule) for e in check(trigger, instruments=MASTER, now=NOW)}


def test_an_index_watched_with_a_basket_of_options_is_valid() -> None:
    """NIFTY 50 at or below 23,800: buy two puts and sell one, stated direction."""
    basket = (
        order(),
        order(quantity=150),
        order(side=Side.SELL, order_type=OrderType.LIMIT, price=12_000),
    )
    assert rules(v2(LegSpec(direction=DOWN, orders=basket))) == set()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (order(instrument=NIFTY), ("legs[0].orders[0].instrument_token", "tradable")),
        (order(quantity=50), ("legs[0].orders[0].quantity", "lot_size")),
        (order(tradingsymbol="OTHER"), ("legs[0].orders[0].tradingsymbol", "mismatch")),
        (order(exchange=Exchange.NSE), ("legs[0].orders[0].exchange", "mismatch")),
        (order(order_type=OrderType.LIMIT), ("legs[0].orders[0].price", "required")),
        (order(price=100), ("legs[0].orders[0].price", "forbidden")),
        (order(trigger_price=100), ("legs[0].orders[0].trigger_price", "forbidden")),
        (
            order(order_type=OrderType.SL, price=100),
            ("legs[0].orders[0].trigger_price", "required"),
        ),
        (
            order(order_type=OrderType.SL, trigger_price=100),
            ("legs[0].orders[0].price", "required"),
        ),
        (order(order_type=OrderType.SL_M), ("legs[0].orders[0].trigger_price", "required")),
        (
            order(order_type=OrderType.SL_M, trigger_price=100, price=100),
            ("legs[0].orders[0].price", "forbidden"),
        ),
        (
            order(order_type=OrderType.LIMIT, price=10_002),
            ("legs[0].orders[0].price", "tick_size"),
        ),
        (
            order(order_type=OrderType.SL, price=10_000, trigger_price=10_001),
            ("legs[0].orders[0].trigger_price", "tick_size"),
        ),
        (
            order(order_type=OrderType.SL, price=10_000, trigger_price=10_005),
            ("legs[0].orders[0].trigger_price", "sl_side"),
        ),
        (
            order(side=Side.SELL, order_type=OrderType.SL, price=10_000, trigger_price=9_995),
            ("legs[0].orders[0].trigger_price", "sl_side"),
        ),
        (order(price_divisor=10_000_000), ("legs[0].orders[0].price_divisor", "mismatch")),
    ],
)
def test_each_order_rule_is_named(spec: OrderSpec, expected: tuple[str, str]) -> None:
    """An order is checked against its own instrument: index, lot, symbol, prices, SL side."""
    trigger = v2(LegSpec(direction=DOWN, orders=(order(), spec)))
    found = rules(trigger)
    assert (expected[0].replace("orders[0]", "orders[1]"), expected[1]) in found, found


def test_sl_stops_on_the_right_side_pass() -> None:
    """BUY SL: trigger <= price; SELL SL: trigger >= price (equal is fine)."""
    buy = order(order_type=OrderType.SL, price=10_000, trigger_price=9_995)
    sell = order(side=Side.SELL, order_type=OrderType.SL, price=10_000, trigger_price=10_000)
    assert rules(v2(LegSpec(direction=DOWN, orders=(buy, sell)))) == set()


def test_basket_size_is_one_to_twenty() -> None:
    """21 orders in a leg, or none, are refused on `legs[0].orders`."""
    assert ("legs[0].orders", "basket_size") in rules(
        v2(LegSpec(direction=DOWN, orders=(order(),) * 21))
    )
    assert rules(v2(LegSpec(direction=DOWN, orders=(order(),) * 20))) == set()
    empty = v2(LegSpec(direction=DOWN, orders=()), thresholds=(2_380_000,))
    assert ("legs[0].orders", "basket_size") in rules(empty)


def test_a_direction_is_required_when_the_order_is_on_another_instrument() -> None:
    """Watching NIFTY and trading a put: DESIGN's table cannot say which way."""
    assert ("legs[0].condition.direction", "required") in rules(v2(LegSpec(orders=(order(),))))
    # On the watched instrument itself, same side: the table says it (v1's rule).
    own = v2(LegSpec(orders=(order(INFY, quantity=1),)), watch=None, thresholds=(150_000,))
    assert rules(own) == set()
    # Same instrument, but a basket of both sides: which way is not the side's to say.
    mixed = (order(INFY, quantity=1), order(INFY, quantity=1, side=Side.SELL))
    assert ("legs[0].condition.direction", "required") in rules(
        v2(LegSpec(orders=mixed), watch=None, thresholds=(150_000,))
    )


def test_oco_legs_that_could_both_hold_are_refused() -> None:
    """Same direction, or an up leg below a down leg: one price would fire both."""
    stop, target = (
        LegSpec(direction=DOWN, orders=(order(),)),
        LegSpec(direction=UP, orders=(order(),)),
    )
    assert rules(v2(stop, target, thresholds=(2_300_000, 2_500_000))) == set()
    assert ("legs[1].condition.price", "oco_order") in rules(
        v2(stop, target, thresholds=(2_500_000, 2_300_000))
    )
    assert ("legs[1].condition.price", "oco_order") in rules(
        v2(stop, target, thresholds=(2_400_000, 2_400_000))
    )
    both_down = LegSpec(direction=DOWN, orders=(order(),))
    assert ("legs[1].condition.direction", "oco_direction") in rules(
        v2(stop, both_down, thresholds=(2_300_000, 2_200_000))
    )
    assert ("legs", "count") in rules(
        v2(stop, thresholds=(2_300_000,), trigger_type=TriggerType.OCO)
    )


def test_time_conditions_are_checked() -> None:
    """A time must carry a zone, be in the future, before expiry, after not_before; no direction."""
    later = NOW + timedelta(hours=1)

    def timed(at: datetime, **fields: Any) -> set[tuple[str, str]]:
        return rules(v2(LegSpec(at=at, orders=(order(),)), thresholds=(0,), **fields))

    assert timed(later) == set()
    assert ("legs[0].condition.at", "future") in timed(NOW)
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert ("legs[0].condition.at", "range") in timed(edge)
    assert ("not_before", "range") in rules(v2(not_before=edge))
    assert ("legs[0].condition.at", "timezone") in timed(later.replace(tzinfo=None))
    assert ("legs[0].condition.at", "before_expiry") in timed(later, expires_at=later)
    assert ("legs[0].condition.at", "not_before") in timed(
        later, not_before=later + timedelta(minutes=1)
    )
    assert ("legs[0].condition", "one_condition") in rules(
        v2(LegSpec(at=later, orders=(order(),)), thresholds=(100,))
    )
    assert ("legs[0].condition.direction", "forbidden") in rules(
        v2(LegSpec(at=later, direction=UP, orders=(order(),)), thresholds=(0,))
    )
    assert ("legs[0].condition.price", "required") in rules(
        v2(LegSpec(direction=DOWN, orders=(order(),)), thresholds=(0,))
    )


def test_not_before_must_precede_expiry() -> None:
    """not_before >= expires_at would leave the trigger no time to fire."""
    at = NOW + timedelta(days=1)
    assert ("not_before", "before_expiry") in rules(v2(not_before=at, expires_at=at))
    assert ("not_before", "timezone") in rules(v2(not_before=at.replace(tzinfo=None)))
    assert rules(v2(not_before=at, expires_at=at + timedelta(hours=1))) == set()


def test_v1_fields_must_mirror_the_first_order() -> None:
    """A store caller's bug: the v1 columns disagree with the first leg's first order."""
    trigger = dataclasses.replace(v2(), quantity=150)
    assert ("quantity", "mirror") in rules(trigger)


def test_a_watched_index_has_no_tick_grid_but_a_watched_stock_does() -> None:
    """Any level of an index may be watched; a stock's threshold must be on its grid."""
    assert rules(v2(thresholds=(2_380_001,))) == set()
    on_infy = v2(LegSpec(direction=DOWN, orders=(order(),)), watch=INFY, thresholds=(150_001,))
    assert ("legs[0].condition.price", "tick_size") in rules(on_infy)


def test_a_limit_on_the_far_side_is_a_warning_not_an_error() -> None:
    """BUY LIMIT below an at_or_above level on the same instrument: valid, with a warning."""
    buy = order(INFY, quantity=1, order_type=OrderType.LIMIT, price=149_000)
    trigger = v2(LegSpec(direction=UP, orders=(buy,)), watch=None, thresholds=(150_000,))
    assert rules(trigger) == set()
    assert [w.split(" ")[0] for w in far_side(trigger)] == ["legs[0].orders[0].price"]
    near = dataclasses.replace(buy, price=151_000)
    trigger = v2(LegSpec(direction=UP, orders=(near,)), watch=None, thresholds=(150_000,))
    assert far_side(dataclasses.replace(trigger, limit_price_1=151_000)) == []


def test_v1_triggers_refuse_stop_orders() -> None:
    """SL and SL-M need a trigger_price, which only a v2 order has."""
    trigger = v2()
    v1 = dataclasses.replace(trigger, leg_specs=(), watch_token=None, order_type=OrderType.SL_M)
    assert ("order_type", "v1_order_type") in {(e.field, e.rule) for e in check(v1)}
