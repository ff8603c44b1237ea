"""The backtest's fill model: at what price an order is taken to fill (docs/backtest.md).

- MARKET fills when placed, at the price that fired its leg (its own
  instrument's last price when it trades another one), moved against the
  trader by a slippage of whole ticks.
- LIMIT fills when the price touches its limit: at the limit when the price
  moved there continuously, at the price itself when it was already better
  (placed marketable, or a gap through the limit).
- SL-M is a stop: once the price reaches its trigger price it fills as a
  MARKET order at the crossing price plus slippage.
- SL is a stop that becomes a LIMIT at `price` once its trigger is reached.

Prices are integer wire units. Nothing here reads a clock or keeps history:
the caller passes the previous price and whether the move from it was
continuous (inside a candle) or a jump (between ticks, or over a gap).
"""

from __future__ import annotations

from dataclasses import dataclass

from hmt.core.model import OrderIntent
from hmt.core.types import Direction, OrderType, Side


def crossing(direction: Direction, level: int, prev: int | None, price: int, smooth: bool) -> int:
    """Where a move from `prev` to `price` reached `level` (the move holds at `price`).

    A continuous move from the other side of `level` reaches it at `level`;
    a jump (or no previous price) reaches it at `price`.
    """
    if not smooth or prev is None:
        return price
    if direction is Direction.AT_OR_ABOVE:
        return level if prev < level <= price else price
    return level if prev > level >= price else price


def slipped(side: Side, price: int, ticks: int, tick_size: int) -> int:
    """`price` moved `ticks` ticks against the trader (a buy pays more), never below a tick."""
    step = ticks * max(tick_size, 1)
    moved = price + step if side is Side.BUY else price - step
    return max(moved, max(tick_size, 1))


def _stop_direction(side: Side) -> Direction:
    """A buy stop triggers on a rise, a sell stop on a fall."""
    return Direction.AT_OR_ABOVE if side is Side.BUY else Direction.AT_OR_BELOW


def _limit_fill(side: Side, limit: int, prev: int | None, price: int, smooth: bool) -> int | None:
    if side is Side.BUY:
        if price > limit:
            return None
        return limit if smooth and prev is not None and prev > limit else price
    if price < limit:
        return None
    return limit if smooth and prev is not None and prev < limit else price


@dataclass(slots=True)
class Working:
    """An order placed and not yet filled, with whether its stop has been reached."""

    intent: OrderIntent
    tick_size: int
    slippage: int  # ticks against the trader, for MARKET and SL-M
    stopped: bool = False  # SL, SL-M: the trigger price was reached

    def fill(self, prev: int | None, price: int, smooth: bool) -> int | None:
        """The fill price of this order on a move from `prev` to `price`, or None.

        `prev` None: the order was just placed at `price` (its reference price).
        """
        intent = self.intent
        kind, side = intent.order_type, intent.side
        if kind is OrderType.MARKET:
            return slipped(side, price, self.slippage, self.tick_size)
        if kind is OrderType.LIMIT:
            assert intent.limit_price is not None
            return _limit_fill(side, intent.limit_price, prev, price, smooth)
        assert intent.trigger_price is not None
        if not self.stopped:
            way = _stop_direction(side)
            reached = (
                price >= intent.trigger_price
                if way is Direction.AT_OR_ABOVE
                else price <= intent.trigger_price
            )
            if not reached:
                return None
            self.stopped = True
            at = crossing(way, intent.trigger_price, prev, price, smooth)
            if kind is OrderType.SL_M:
                return slipped(side, at, self.slippage, self.tick_size)
            assert intent.limit_price is not None
            # The stop turned it into a limit order at the crossing: fills there if
            # the limit allows, else rests as a limit.
            return _limit_fill(side, intent.limit_price, None, at, False)
        if kind is OrderType.SL_M:  # pragma: no cover - an SL-M fills when stopped
            return slipped(side, price, self.slippage, self.tick_size)
        assert intent.limit_price is not None
        return _limit_fill(side, intent.limit_price, prev, price, smooth)
