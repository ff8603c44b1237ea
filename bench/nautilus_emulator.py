"""NautilusTrader's order emulator holding the bench's stops, driven tick by tick.

Benchmark-only: `nautilus-trader` is the `bench` extra (`make bench` installs it),
never a dependency of hmt. What is wired is what a Nautilus node runs around its
emulator on the per-tick path: a message bus, a cache without a database, a portfolio
and a risk engine (which receives the emulator's `OrderUpdated` events; without it every
event would be an error log on the bus). The tick is a `TradeTick` handed to
`OrderEmulator.on_trade_tick`, as the data engine does for a subscribed instrument; the
data engine's own hop (one bus publish) is left out, in Nautilus's favour.
"""

from __future__ import annotations

import time
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.emulator import OrderEmulator
from nautilus_trader.execution.messages import SubmitOrder
from nautilus_trader.model.currencies import INR
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import (
    AggressorSide,
    OrderSide,
    TrailingOffsetType,
    TriggerType,
)
from nautilus_trader.model.identifiers import (
    InstrumentId,
    StrategyId,
    Symbol,
    TradeId,
    TraderId,
    Venue,
)
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.model.orders import Order
from nautilus_trader.portfolio.portfolio import Portfolio
from nautilus_trader.risk.engine import RiskEngine

from hmt.core.trailing import Offset, Trail
from hmt.core.types import Side

# Kite's prices are paise; Nautilus's are decimals with the instrument's precision.
PRECISION = 2
PAISE = Decimal(100)
_OFFSET_TYPE = {
    Offset.PRICE: TrailingOffsetType.PRICE,
    Offset.BPS: TrailingOffsetType.BASIS_POINTS,
    Offset.TICKS: TrailingOffsetType.TICKS,
}
_SIDE = {Side.BUY: OrderSide.BUY, Side.SELL: OrderSide.SELL}


def price(paise: int) -> Price:
    return Price(Decimal(paise) / PAISE, PRECISION)


class NautilusEmulator:
    """One instrument in Nautilus's `OrderEmulator`, emulating on the last price (LTP).

    `trail` maps a `Trail` to a `TRAILING_STOP_MARKET` order with the same side, offset
    kind and offset; Nautilus has no step, so a stepped trail becomes an unstepped one
    (it moves at least as often as ours). `stop` maps a fixed stop-loss leg to a
    `STOP_MARKET` order at the same trigger price, and a target to `if_touched`.
    """

    def __init__(self, symbol: str, tick: int, first_ltp: int) -> None:
        self.clock = TestClock()
        trader = TraderId("BENCH-001")
        self.strategy = StrategyId("BENCH-001")
        self.msgbus = MessageBus(trader_id=trader, clock=self.clock)
        self.cache = Cache(database=None)
        self.instrument = Equity(
            instrument_id=InstrumentId(Symbol(symbol), Venue("NSE")),
            raw_symbol=Symbol(symbol),
            currency=INR,
            price_precision=PRECISION,
            price_increment=price(tick),
            lot_size=Quantity.from_int(1),
            ts_event=0,
            ts_init=0,
        )
        self.cache.add_instrument(self.instrument)
        portfolio = Portfolio(msgbus=self.msgbus, cache=self.cache, clock=self.clock)
        self.risk = RiskEngine(
            portfolio=portfolio, msgbus=self.msgbus, cache=self.cache, clock=self.clock
        )
        self.emulator = OrderEmulator(
            portfolio=portfolio, msgbus=self.msgbus, cache=self.cache, clock=self.clock
        )
        self.risk.start()
        self.emulator.start()
        self.factory = OrderFactory(trader_id=trader, strategy_id=self.strategy, clock=self.clock)
        self.core = self.emulator.create_matching_core(
            self.instrument.id, self.instrument.price_increment
        )
        self.ticks: dict[int, TradeTick] = {}
        # A trailing stop without an activation price starts from the market it is
        # submitted into: the emulator needs a last price before the first order.
        self.on_tick(0, first_ltp)
        self.cache.add_trade_tick(self.ticks[first_ltp])
        self.orders: list[Order] = []
        self.load_s = 0.0

    def trade_tick(self, ltp: int) -> TradeTick:
        tick = self.ticks.get(ltp)
        if tick is None:
            tick = TradeTick(
                self.instrument.id,
                price(ltp),
                Quantity.from_int(1),
                AggressorSide.BUYER,
                TradeId(str(len(self.ticks) + 1)),
                0,
                0,
            )
            self.ticks[ltp] = tick
        return tick

    def prepare(self, ltps: range) -> None:
        """Build the ticks of a run beforehand: a feed hands the emulator built ticks."""
        for ltp in ltps:
            self.trade_tick(ltp)

    def hold(self, orders: list[Order]) -> None:
        """Submit `orders` to the emulator, each as a strategy's `SubmitOrder` reaches it."""
        started = time.perf_counter()
        for order in orders:
            self.cache.add_order(order, position_id=None)
            self.emulator.execute(
                SubmitOrder(
                    trader_id=order.trader_id,
                    strategy_id=self.strategy,
                    order=order,
                    command_id=UUID4(),
                    ts_init=0,
                )
            )
        self.load_s += time.perf_counter() - started
        self.orders += orders

    def trail(self, trail: Trail) -> Order:
        offset = Decimal(trail.offset)
        if trail.kind is Offset.PRICE:
            offset /= PAISE
        return self.factory.trailing_stop_market(
            instrument_id=self.instrument.id,
            order_side=_SIDE[trail.side],
            quantity=Quantity.from_int(1),
            trailing_offset=offset,
            trailing_offset_type=_OFFSET_TYPE[trail.kind],
            trigger_type=TriggerType.LAST_PRICE,
            emulation_trigger=TriggerType.LAST_PRICE,
        )

    def stop(self, side: Side, trigger_price: int) -> Order:
        return self.factory.stop_market(
            instrument_id=self.instrument.id,
            order_side=_SIDE[side],
            quantity=Quantity.from_int(1),
            trigger_price=price(trigger_price),
            trigger_type=TriggerType.LAST_PRICE,
            emulation_trigger=TriggerType.LAST_PRICE,
        )

    def if_touched(self, side: Side, trigger_price: int) -> Order:
        """A target: a `MARKET_IF_TOUCHED` order (a SELL above the market, a BUY below)."""
        return self.factory.market_if_touched(
            instrument_id=self.instrument.id,
            order_side=_SIDE[side],
            quantity=Quantity.from_int(1),
            trigger_price=price(trigger_price),
            trigger_type=TriggerType.LAST_PRICE,
            emulation_trigger=TriggerType.LAST_PRICE,
        )

    def on_tick(self, token: int, ltp: int) -> bool:
        """Hand the emulator one LTP; never reports a fire (`held` says what is left)."""
        self.emulator.on_trade_tick(self.trade_tick(ltp))
        return False

    def held(self) -> int:
        """How many orders the emulator still holds (none released, none cancelled)."""
        return len(self.core.get_orders())

    def stops(self) -> list[int]:
        """Each held order's trigger price, in paise, in submission order."""
        return [int(o.trigger_price.as_decimal() * PAISE) for o in self.orders]
