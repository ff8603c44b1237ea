"""The fill model: MARKET with slippage, LIMIT when touched, SL and SL-M as stops."""

from __future__ import annotations

from hmt.core.fills import Working, crossing, slipped
from hmt.core.model import OrderIntent
from hmt.core.types import (
    Direction,
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
    TriggerId,
)

UP, DOWN = Direction.AT_OR_ABOVE, Direction.AT_OR_BELOW


def order(
    side: Side, kind: OrderType, price: int | None = None, stop: int | None = None
) -> Working:
    intent = OrderIntent(
        trigger_id=TriggerId("t"),
        leg=Leg.FIRST,
        tag="x",
        instrument_token=InstrumentToken(408065),
        exchange=Exchange.NSE,
        tradingsymbol="INFY",
        side=side,
        quantity=1,
        product=Product.MIS,
        order_type=kind,
        limit_price=price,
        price_divisor=100,
        trigger_price=stop,
    )
    return Working(intent, tick_size=5, slippage=2)


def test_a_continuous_move_crosses_at_the_level_a_jump_at_the_price() -> None:
    assert crossing(UP, 1000, 990, 1010, smooth=True) == 1000
    assert crossing(UP, 1000, 990, 1010, smooth=False) == 1010  # between ticks: a jump
    assert crossing(UP, 1000, 1005, 1010, smooth=True) == 1010  # already past: no crossing
    assert crossing(DOWN, 1000, 1010, 990, smooth=True) == 1000
    assert crossing(DOWN, 1000, None, 990, smooth=True) == 990


def test_slippage_is_whole_ticks_against_the_trader_never_below_a_tick() -> None:
    assert slipped(Side.BUY, 1000, 2, 5) == 1010
    assert slipped(Side.SELL, 1000, 2, 5) == 990
    assert slipped(Side.SELL, 5, 3, 5) == 5


def test_market_fills_at_once_with_slippage() -> None:
    assert order(Side.BUY, OrderType.MARKET).fill(None, 1000, False) == 1010
    assert order(Side.SELL, OrderType.MARKET).fill(None, 1000, False) == 990


def test_limit_fills_when_touched_at_the_limit_or_better_on_a_jump() -> None:
    buy = order(Side.BUY, OrderType.LIMIT, price=1000)
    assert buy.fill(None, 1010, False) is None  # placed above the limit: rests
    assert buy.fill(1010, 1005, True) is None
    assert buy.fill(1005, 995, True) == 1000  # moved through it: at the limit
    assert order(Side.BUY, OrderType.LIMIT, price=1000).fill(1010, 990, False) == 990  # a gap
    assert order(Side.BUY, OrderType.LIMIT, price=1000).fill(None, 980, False) == 980
    sell = order(Side.SELL, OrderType.LIMIT, price=1000)
    assert sell.fill(990, 999, True) is None
    assert sell.fill(999, 1003, True) == 1000


def test_sl_m_is_a_stop_then_a_market_order() -> None:
    stop = order(Side.SELL, OrderType.SL_M, stop=1000)
    assert stop.fill(None, 1010, False) is None
    assert stop.fill(1010, 1001, True) is None
    assert stop.fill(1001, 990, True) == 1000 - 10  # crossed at 1000, two ticks of slippage
    gapped = order(Side.SELL, OrderType.SL_M, stop=1000)
    assert gapped.fill(1010, 950, False) == 940


def test_sl_is_a_stop_then_a_limit() -> None:
    stop = order(Side.BUY, OrderType.SL, price=1005, stop=1000)
    assert stop.fill(990, 999, True) is None
    assert stop.fill(999, 1020, True) == 1000  # stopped at 1000, within its limit
    through = order(Side.BUY, OrderType.SL, price=1005, stop=1000)
    assert through.fill(990, 1020, False) is None  # a gap past the limit: rests as a limit
    assert through.stopped
    assert through.fill(1020, 1004, True) == 1005
