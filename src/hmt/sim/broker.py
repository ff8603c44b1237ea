"""The paper broker: Kite's order book, filled against the simulated market.

MARKET orders fill at the last price (with `fills.market` "next_tick", at the
next trade's price instead: an order reaches the exchange after the quote it
saw); LIMIT orders fill when the market
crosses them (at the last price when marketable on entry, at the limit price
once resting); SL and SL-M wait in TRIGGER PENDING until the last price
reaches the trigger, then work as LIMIT and MARKET orders. With `fills.parts`
above 1 an order fills in that many slices, one per trade that still crosses
it, each announced as Kite announces a partial fill (an `UPDATE` order update). Every request is
settled before its response returns, so the book is final when a client reads
it. Statuses, messages and row shapes follow FACTS 2.2-2.6 and the fixtures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from hmt.sim.errors import KiteError, input_error
from hmt.sim.limits import OrderLimits, RateLimiter
from hmt.sim.orders import (
    KNOWN_VARIETIES,
    MODELLED_VARIETIES,
    Order,
    Terms,
    instrument_of,
    parse_terms,
    rupees,
)
from hmt.sim.prices import IST, Market, Quote
from hmt.sim.universe import Universe

MAX_MODIFICATIONS = 25  # per order (FACTS 2.4)
UpdateListener = Callable[[dict[str, Any]], None]
MARKET_FILLS = ("now", "next_tick")


@dataclass
class Fills:
    """How orders fill (docs/simulator.md): in `parts` slices, MARKET now or next tick."""

    parts: int = 1
    market: str = "now"

    def __post_init__(self) -> None:
        if not 1 <= self.parts <= 100:
            raise ValueError("fills.parts must be between 1 and 100")
        if self.market not in MARKET_FILLS:
            raise ValueError(f"fills.market must be one of {', '.join(MARKET_FILLS)}")

    def slice(self, quantity: int, filled: int) -> int:
        """The next slice of an order of `quantity` with `filled` done (the last: the rest)."""
        size = max(1, -(-quantity // self.parts))
        return min(size, quantity - filled)


def kite_timestamp(epoch: float) -> str:
    """Kite's REST timestamp: IST wall-clock time, `yyyy-mm-dd hh:mm:ss`."""
    return datetime.fromtimestamp(epoch, IST).strftime("%Y-%m-%d %H:%M:%S")


class Broker:
    """Accepts, matches, modifies and cancels paper orders."""

    def __init__(
        self,
        universe: Universe,
        market: Market,
        *,
        seed: int,
        user_id: str,
        funds: int | None = None,
        limits: OrderLimits | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.universe, self.market, self.user_id = universe, market, user_id
        self.clock = clock
        self.rate_limiter = RateLimiter(limits or OrderLimits(), monotonic)
        self.listeners: list[UpdateListener] = []
        self.initial_funds = funds
        self._seed = seed
        self.reset()
        market.listeners.append(self.on_quote)

    def reset(self) -> None:
        """An empty book, funds restored, rate windows cleared."""
        rng = random.Random(f"{self._seed}:orders")
        # 19-digit ids like Kite's newer ones: above 2**53, so never parse them as floats.
        self._next_id = 1_950_000_000_000_000_000 + rng.randrange(10**15)
        self._next_exchange_id = 1_300_000_000_000_000
        self._next_trade = 10_000_000
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, list[dict[str, Any]]] = {}
        self._working: dict[int, list[Order]] = {}
        self.funds = self.initial_funds
        self.fills = Fills()
        self.rate_limiter.reset()

    # ---- requests -------------------------------------------------------

    def place(self, variety: str, form: Mapping[str, str]) -> str:
        """POST /orders/{variety}: returns the new order's id (it may be REJECTED)."""
        _check_variety(variety)
        self.rate_limiter.take()
        instrument = instrument_of(form, self.universe)
        terms = parse_terms(form, instrument)
        now = kite_timestamp(self.clock())
        order = Order(
            order_id=str(self._next_id),
            variety=variety,
            terms=terms,
            user_id=self.user_id,
            guid=f"sim{self._next_id % 10**12:012d}",
            order_timestamp=now,
            order_type=terms.order_type,
            limit=terms.price,
        )
        self._next_id += 1
        self.orders[order.order_id] = order
        self._record(order, "PUT ORDER REQ RECEIVED")
        self._record(order, "VALIDATION PENDING")
        self._protect(order)
        reason = self._rms_check(order)
        if reason is not None:
            self._finish(order, "REJECTED", *reason)
            return order.order_id
        self._record(order, "OPEN PENDING")
        order.exchange_order_id = str(self._next_exchange_id)
        self._next_exchange_id += 1
        order.exchange_timestamp = order.exchange_update_timestamp = now
        self._work(order)
        return order.order_id

    def modify(self, variety: str, order_id: str, form: Mapping[str, str]) -> str:
        """PUT /orders/{variety}/{order_id}: change a working order's terms."""
        _check_variety(variety)
        order = self._get(order_id)
        if not order.working:
            raise input_error(f"Order cannot be modified as it is {order.status}.")
        if order.modifications >= MAX_MODIFICATIONS:
            raise input_error("Maximum allowed order modifications exceeded.")
        keep = {
            k: form[k]
            for k in (
                "order_type",
                "quantity",
                "price",
                "trigger_price",
                "validity",
                "disclosed_quantity",
                "market_protection",
            )
            if k in form
        }
        terms = parse_terms(keep, order.terms.instrument, _as_form(order.terms))
        if terms.quantity < order.filled_quantity:
            raise input_error("Invalid `quantity`: less than the quantity already filled.")
        self._unwork(order)
        self._release(order)
        order.terms, order.order_type, order.limit = terms, terms.order_type, terms.price
        order.modified, order.modifications = True, order.modifications + 1
        for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED"):
            self._record(order, status)
        self._protect(order)
        reason = self._rms_check(order)
        if reason is not None:
            self._finish(order, "REJECTED", *reason)
        else:
            order.exchange_update_timestamp = kite_timestamp(self.clock())
            self._work(order, notify=True)
        return order.order_id

    def cancel(self, variety: str, order_id: str) -> str:
        """DELETE /orders/{variety}/{order_id}: cancel a working order."""
        _check_variety(variety)
        order = self._get(order_id)
        if not order.working:
            raise input_error(f"Order cannot be cancelled as it is {order.status}.")
        self._record(order, "CANCEL PENDING")
        self._finish(order, "CANCELLED")
        return order.order_id

    def book(self) -> list[dict[str, Any]]:
        """GET /orders: every order today, latest state, oldest first."""
        return [o.row() for o in self.orders.values()]

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """GET /orders/{order_id}: one row per state the order went through."""
        return list(self._get(order_id).history)

    def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        """GET /orders/{order_id}/trades: the order's fills."""
        self._get(order_id)
        return list(self.trades.get(order_id, []))

    # ---- matching -------------------------------------------------------

    def on_quote(self, quote: Quote) -> None:
        """A trade happened: fill or trigger the orders working on that instrument."""
        for order in list(self._working.get(quote.token, ())):
            self._match(order, quote.last, on_entry=False)

    def _work(self, order: Order, notify: bool = False) -> None:
        sl = order.terms.order_type in ("SL", "SL-M")
        self._record(order, "TRIGGER PENDING" if sl else "OPEN")
        self._working.setdefault(order.terms.instrument.token, []).append(order)
        if notify:
            self._notify(order)
        last = self.market.quotes[order.terms.instrument.token].last
        self._match(order, last, on_entry=True)
        if order.working and order.status == "OPEN" and order.terms.validity == "IOC":
            self._finish(order, "CANCELLED")

    def _match(self, order: Order, last: int, on_entry: bool) -> None:
        t = order.terms
        buy = t.transaction_type == "BUY"
        if order.status == "TRIGGER PENDING":
            if (last < t.trigger_price) if buy else (last > t.trigger_price):
                return
            if t.order_type == "SL-M":  # triggered: a protected market order from here
                order.limit = _protected(last, t, buy)
            self._record(order, "OPEN")
            self._notify(order)
            if not on_entry and self._fill_or_kill(order, last):
                return
            on_entry = True  # the order reaches the exchange at this last price
        market = t.order_type == "MARKET"
        if market and on_entry and self.fills.market == "next_tick":
            return  # it meets the exchange's next trade
        if (last <= order.limit) if buy else (last >= order.limit):
            self._fill(order, last if on_entry or market else order.limit)

    def _fill_or_kill(self, order: Order, last: int) -> bool:
        """A triggered IOC stop meets the exchange now: it fills at once or is cancelled."""
        if order.terms.validity != "IOC":
            return False
        buy = order.terms.transaction_type == "BUY"
        if (last <= order.limit) if buy else (last >= order.limit):
            self._fill(order, last)
        else:
            self._finish(order, "CANCELLED")
        return True

    def _fill(self, order: Order, price: int) -> None:
        t = order.terms
        part = t.quantity - order.filled_quantity
        if order.terms.validity != "IOC":
            part = self.fills.slice(t.quantity, order.filled_quantity)
        done = order.filled_quantity + part
        order.average_price = (order.average_price * order.filled_quantity + price * part) // done
        order.filled_quantity = done
        now = kite_timestamp(self.clock())
        order.exchange_update_timestamp = order.exchange_timestamp = now
        if self.funds is not None and done == t.quantity:
            value = order.average_price * t.quantity
            self.funds += order.blocked - value if t.transaction_type == "BUY" else value
            order.blocked = 0
        self.trades.setdefault(order.order_id, []).append(
            {
                "trade_id": str(self._next_trade),
                "order_id": order.order_id,
                "exchange": t.instrument.exchange,
                "tradingsymbol": t.instrument.tradingsymbol,
                "instrument_token": t.instrument.token,
                "product": t.product,
                "average_price": rupees(price, t.instrument.divisor),
                "quantity": part,
                "exchange_order_id": order.exchange_order_id,
                "transaction_type": t.transaction_type,
                "fill_timestamp": now,
                "order_timestamp": now[11:],
                "exchange_timestamp": now,
            }
        )
        self._next_trade += 1
        if done < t.quantity:  # a partial fill: still OPEN in the book
            self._record(order, "OPEN")
            self._notify(order, status="UPDATE")
            return
        self._finish(order, "COMPLETE")

    # ---- checks and bookkeeping -----------------------------------------

    def _protect(self, order: Order) -> None:
        """MARKET with protection becomes a LIMIT at the protected price (FACTS 2.5)."""
        t = order.terms
        order.tags = [t.tag] if t.tag else []  # the user's tag first, then system tags
        if t.protection is None:
            return
        order.tags += ["mktp", f"mktp:{t.protection:.2f}"]
        if t.order_type == "MARKET":
            last = self.market.quotes[t.instrument.token].last
            order.order_type = "LIMIT"
            order.limit = _protected(last, t, t.transaction_type == "BUY")

    def _rms_check(self, order: Order) -> tuple[str, str] | None:
        """The reason the broker's risk checks reject this order, if they do."""
        t, i = order.terms, order.terms.instrument
        last = self.market.quotes[i.token].last
        tick = Decimal(i.tick) / i.divisor
        if t.quantity % max(1, i.lot_size):
            return (
                f"Quantity should be a multiple of the lot size {i.lot_size}.",
                f"RMS:Quantity {t.quantity} is not a multiple of lot size {i.lot_size}",
            )
        for name, units in (("price", t.price), ("trigger price", t.trigger_price)):
            if units % i.tick:
                return (
                    f"The {name} is not a multiple of the tick size {tick}.",
                    f"RMS:Rule: Check tick size for entity account-{self.user_id}",
                )
        if t.order_type in ("SL", "SL-M"):
            side = "buy" if t.transaction_type == "BUY" else "sell"
            above = t.transaction_type == "BUY"
            if (t.trigger_price <= last) if above else (t.trigger_price >= last):
                where = "higher" if above else "lower"
                return (
                    f"Trigger price for stoploss {side} orders should be {where} than the "
                    "last traded price.",
                    "RMS:Rule: Trigger price check",
                )
            if t.order_type == "SL" and (
                (t.price < t.trigger_price) if above else (t.price > t.trigger_price)
            ):
                where = "higher" if above else "lower"
                return (
                    f"Limit price for stoploss {side} orders should be {where} than or "
                    "equal to the trigger price.",
                    "RMS:Rule: Limit price check",
                )
        if self.funds is not None and t.transaction_type == "BUY":
            need = t.quantity * (order.limit or t.trigger_price or last)
            if need > self.funds:
                required, available = need / i.divisor, self.funds / i.divisor
                return (
                    f"Insufficient funds. Required margin is {required:.2f} but available "
                    f"margin is {available:.2f}. Check the orderbook for open orders.",
                    f"RMS:Margin Exceeds,Required:{required:.2f}, Available:{available:.2f}"
                    f" for entity account-{self.user_id} across exchange across segment "
                    "across product ",
                )
            order.blocked = need
            self.funds -= need
        return None

    def _release(self, order: Order) -> None:
        if self.funds is not None and order.blocked:
            self.funds += order.blocked
            order.blocked = 0

    def _unwork(self, order: Order) -> None:
        working = self._working.get(order.terms.instrument.token, [])
        if order in working:
            working.remove(order)

    def _finish(
        self, order: Order, status: str, message: str | None = None, raw: str | None = None
    ) -> None:
        self._unwork(order)
        self._release(order)
        if status == "CANCELLED":
            order.cancelled_quantity = order.terms.quantity - order.filled_quantity
            order.exchange_update_timestamp = kite_timestamp(self.clock())
        order.status_message, order.status_message_raw = message, raw
        self._record(order, status)
        self._notify(order)

    def _record(self, order: Order, status: str) -> None:
        order.status = status
        order.history.append(order.row())

    def _notify(self, order: Order, status: str | None = None) -> None:
        row = order.row()
        if status is not None:  # the postback's status (a partial fill's is UPDATE)
            row["status"] = status
        for listener in self.listeners:
            listener(row)

    def _get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise input_error("Couldn't find that `order_id`.")
        return order


def _protected(last: int, t: Terms, buy: bool) -> int:
    """The limit price a protected market order works at: inside the band, on the grid."""
    pct = t.protection if t.protection is not None else Decimal(0)
    tick = t.instrument.tick
    raw = Decimal(last) * (1 + pct / 100 if buy else 1 - pct / 100) / tick
    steps = raw.to_integral_value(rounding=ROUND_FLOOR if buy else ROUND_CEILING)
    return max(tick, int(steps) * tick)


def _as_form(t: Terms) -> dict[str, str]:
    d = t.instrument.divisor
    form = {
        "transaction_type": t.transaction_type,
        "order_type": t.order_type,
        "quantity": str(t.quantity),
        "product": t.product,
        "validity": t.validity,
        "price": str(Decimal(t.price) / d),
        "trigger_price": str(Decimal(t.trigger_price) / d),
        "disclosed_quantity": str(t.disclosed_quantity),
        "validity_ttl": str(t.validity_ttl),
    }
    if t.protection is not None:
        form["market_protection"] = str(t.protection)
    if t.tag is not None:
        form["tag"] = t.tag
    return form


def _check_variety(variety: str) -> None:
    if variety not in KNOWN_VARIETIES:
        raise input_error(f"Invalid `variety` {variety!r}.")
    if variety not in MODELLED_VARIETIES:
        raise KiteError(
            "InputException", f"The simulator models the regular variety only, not {variety!r}."
        )
