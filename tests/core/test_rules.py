"""The six rows of DESIGN section 1, each on both sides of its boundary."""

from __future__ import annotations

import pytest

from hmt.core.book import TriggerBook
from hmt.core.rules import DIRECTIONS, holds, legs_holding, order_for
from hmt.core.types import Direction, Leg, OrderType, Side, TriggerType
from tests.support.factories import make_oco, make_trigger

TICK = 5  # NSE equity tick size in paise

# (trigger type, side, leg, threshold's direction): DESIGN section 1, row by row.
TABLE = [
    (TriggerType.SINGLE, Side.BUY, Leg.FIRST, Direction.AT_OR_ABOVE),
    (TriggerType.SINGLE, Side.SELL, Leg.FIRST, Direction.AT_OR_BELOW),
    (TriggerType.OCO, Side.BUY, Leg.FIRST, Direction.AT_OR_ABOVE),
    (TriggerType.OCO, Side.BUY, Leg.SECOND, Direction.AT_OR_BELOW),
    (TriggerType.OCO, Side.SELL, Leg.FIRST, Direction.AT_OR_BELOW),
    (TriggerType.OCO, Side.SELL, Leg.SECOND, Direction.AT_OR_ABOVE),
]


def _trigger_for(trigger_type: TriggerType, side: Side, leg: Leg, price: int):  # type: ignore[no-untyped-def]
    """A trigger whose `leg` sits at `price`, the other leg far away on its own side."""
    if trigger_type is TriggerType.SINGLE:
        return make_trigger(side=side, trigger_price_1=price)
    far_above, far_below = price * 2, price // 2
    if side is Side.SELL:  # stop below, target above
        stop, target = (price, far_above) if leg is Leg.FIRST else (far_below, price)
    else:  # BUY: stop above, target below
        stop, target = (price, far_below) if leg is Leg.FIRST else (far_above, price)
    return make_oco(side, stop, target)


def test_table_is_complete() -> None:
    """The rules table has exactly the six rows of the design, no more."""
    assert dict(DIRECTIONS) == {(t, s, leg): d for t, s, leg, d in TABLE}


@pytest.mark.parametrize(("trigger_type", "side", "leg", "way"), TABLE)
def test_leg_fires_at_equal_price_and_not_one_tick_short(trigger_type, side, leg, way) -> None:  # type: ignore[no-untyped-def]
    """Equal price fires; one tick size on the wrong side does not; beyond fires."""
    price = 160_000
    short = price - TICK if way is Direction.AT_OR_ABOVE else price + TICK
    beyond = price + TICK if way is Direction.AT_OR_ABOVE else price - TICK
    trigger = _trigger_for(trigger_type, side, leg, price)

    assert legs_holding(trigger, short) == ()
    assert legs_holding(trigger, price) == (leg,)
    assert legs_holding(trigger, beyond) == (leg,)

    book = TriggerBook()
    book.add(trigger)
    assert book.on_tick(trigger.instrument_token, short) == ()
    fired = book.on_tick(trigger.instrument_token, price)
    assert [(f.trigger.id, f.leg, f.ltp) for f in fired] == [(trigger.id, leg, price)]
    assert trigger.id not in book


def test_holds_is_inclusive_both_ways() -> None:
    """`holds` treats the threshold itself as reached, in both directions."""
    assert holds(Direction.AT_OR_ABOVE, 100, 100)
    assert not holds(Direction.AT_OR_ABOVE, 100, 99)
    assert holds(Direction.AT_OR_BELOW, 100, 100)
    assert not holds(Direction.AT_OR_BELOW, 100, 101)


def test_order_for_uses_the_fired_legs_limit_and_tag() -> None:
    """Each oco leg places the trigger's side with its own limit price and the given tag."""
    oco = make_oco(
        Side.SELL,
        240_000,
        280_000,
        order_type=OrderType.LIMIT,
        limit_price_1=239_500,
        limit_price_2=280_500,
    )
    first, second = order_for(oco, Leg.FIRST, "T1"), order_for(oco, Leg.SECOND, "T2")
    assert (first.side, first.limit_price, first.tag) == (
        Side.SELL,
        239_500,
        "T1",
    )
    assert (second.side, second.limit_price, second.tag) == (
        Side.SELL,
        280_500,
        "T2",
    )
    assert first.quantity == oco.quantity
    assert first.tradingsymbol == "INFY"
