"""Upstox's order endpoints: place (v3), cancel, modify, and find an order again by its tag.

The order port of docs/upstox/ORDERS.md: the same `OrderPort` as `KiteOrders`,
so the executor's retry rules do not change with the broker. Upstox names
the instrument by its key, so the port is given `key_for` (the day's master,
`hmt.upstox.instruments.Master.key_for`) to turn the core's id into it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.prices import to_decimal
from hmt.core.types import Leg, OrderType, Product
from hmt.upstox.instruments import instrument_id
from hmt.upstox.rest import UpstoxRest
from hmt.upstox.tags import broker_tag, parse_tag

# Upstox's automatic market protection (FACTS 2.3): optional there, but hmt asks for it
# so that a MARKET order is protected the same way on both brokers.
AUTO_MARKET_PROTECTION = -1
# Kite's product names, as Upstox's (FACTS 2.2): delivery and carry-forward are both D.
PRODUCTS = {Product.CNC: "D", Product.NRML: "D", Product.MIS: "I"}


class UpstoxOrders:
    """The order port for a live Upstox account."""

    def __init__(
        self,
        rest: UpstoxRest,
        key_for: Callable[[int], str],
        *,
        market_protection: float = AUTO_MARKET_PROTECTION,
    ) -> None:
        self._rest = rest
        self._key_for = key_for
        self._market_protection = market_protection

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return broker_tag(trigger_id, leg, position)

    async def place(self, intent: OrderIntent) -> str:
        """Send a trigger's order; its Upstox order id."""
        return await self.place_body(self.order_body(intent))

    async def place_stop(self, intent: OrderIntent, *, trigger_price: int) -> str:
        """`intent` as a stop held at the exchange: SL with a limit price, SL-M without."""
        body = self.order_body(intent)
        body["order_type"] = "SL" if intent.order_type is OrderType.LIMIT else "SL-M"
        body["trigger_price"] = float(to_decimal(trigger_price, intent.price_divisor))
        if body["order_type"] == "SL-M":
            body["market_protection"] = self._market_protection
        return await self.place_body(body)

    async def place_body(self, body: dict[str, Any]) -> str:
        """POST /v3/order/place; the one order id it answers (hmt never asks for slicing)."""
        data = await self._rest.request("POST", "/v3/order/place", body=body)
        ids = data.get("order_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            # Success without an id we can read: the order may well exist.
            raise BrokerError(ErrorKind.AMBIGUOUS, f"success without an order id: {data!r:.200}")
        return str(ids[0])

    async def cancel(self, order_id: str) -> str:
        data = await self._rest.request("DELETE", "/v3/order/cancel", params={"order_id": order_id})
        return _order_id(data)

    async def modify(self, order_id: str, **fields: Any) -> str:
        data = await self._rest.request(
            "PUT", "/v3/order/modify", body={"order_id": order_id, **fields}
        )
        return _order_id(data)

    async def orders(self) -> list[OrderReport]:
        """Today's orders that carry one of our tags (one GET of the order book)."""
        return [ours for report in await self._book() if (ours := only_our_tags(report))]

    async def find(self, tag: str) -> list[OrderReport]:
        """Every order in today's book that carries `tag`.

        The book, not GET /v2/order/history?tag=: what the history answers for
        a tag no order carries is not documented, and an unknown tag is exactly
        the case recovery must read right (docs/upstox/ORDERS.md).
        """
        return [report for report in await self._book() if report.carries(tag)]

    async def history(self, order_id: str) -> list[OrderReport]:
        data = await self._rest.request("GET", "/v2/order/history", params={"order_id": order_id})
        if not isinstance(data, list):
            raise BrokerError(ErrorKind.AMBIGUOUS, "the order history is not a list")
        return [report_from_row(row) for row in data]

    async def _book(self) -> list[OrderReport]:
        data = await self._rest.request("GET", "/v2/order/retrieve-all")
        if not isinstance(data, list):
            raise BrokerError(ErrorKind.AMBIGUOUS, "the order book is not a list")
        return [report_from_row(row) for row in data]

    def order_body(self, intent: OrderIntent) -> dict[str, Any]:
        """The JSON body of POST /v3/order/place for `intent` (FACTS 2.2)."""
        kind = intent.order_type
        try:
            key = self._key_for(intent.instrument_token)
        except KeyError as exc:
            # Nothing was sent, and a retry with the same master cannot find it either.
            raise BrokerError(ErrorKind.FINAL, str(exc)) from None
        body: dict[str, Any] = {
            "instrument_token": key,
            "transaction_type": intent.side.value,
            "order_type": kind.value,
            "quantity": intent.quantity,
            "product": PRODUCTS[intent.product],
            "validity": intent.validity.value,
            "price": 0.0,
            "trigger_price": 0.0,
            "disclosed_quantity": 0,
            "is_amo": False,
            "slice": False,
            "tag": intent.tag,
        }
        if kind in (OrderType.LIMIT, OrderType.SL):
            if intent.limit_price is None:
                raise ValueError(f"{kind} order for {intent.trigger_id} has no limit price")
            body["price"] = float(to_decimal(intent.limit_price, intent.price_divisor))
        if kind in (OrderType.SL, OrderType.SL_M):
            if intent.trigger_price is None:
                raise ValueError(f"{kind} order for {intent.trigger_id} has no trigger_price")
            body["trigger_price"] = float(to_decimal(intent.trigger_price, intent.price_divisor))
        if kind in (OrderType.MARKET, OrderType.SL_M):
            body["market_protection"] = self._market_protection
        return body


def _order_id(data: Any) -> str:
    order_id = data.get("order_id") if isinstance(data, dict) else None
    if not isinstance(order_id, str):
        raise BrokerError(ErrorKind.AMBIGUOUS, f"success without an order id: {data!r:.200}")
    return order_id


def only_our_tags(report: OrderReport) -> OrderReport | None:
    """`report` with just the tags `hmt.upstox.tags` could have made; None if it has none."""
    ours = tuple(t for t in dict.fromkeys((report.tag, *report.tags)) if t and parse_tag(t))
    if not ours:
        return None
    return dataclasses.replace(report, tag=ours[0], tags=ours)


def report_from_row(row: Any) -> OrderReport:
    """An order-book row as a report, its status in Kite's upper case (the core's words).

    Upstox's statuses are lower case (`complete`, `rejected`, `cancelled`, `open`,
    `trigger pending`...; FACTS 2.5); upper-casing them gives the core's terminal
    set exactly. A row we cannot read is an ambiguous answer.
    """
    if not isinstance(row, dict) or not isinstance(row.get("order_id"), str):
        raise BrokerError(ErrorKind.AMBIGUOUS, f"unreadable order-book row: {row!r:.200}")
    tag = row.get("tag")
    filled = row.get("filled_quantity")
    key = row.get("instrument_token")
    message = row.get("status_message")
    return OrderReport(
        order_id=row["order_id"],
        status=str(row.get("status") or "").upper(),
        tag=tag if isinstance(tag, str) and tag else None,
        tags=(tag,) if isinstance(tag, str) and tag else (),
        status_message=message if isinstance(message, str) else None,
        filled_quantity=filled if isinstance(filled, int) and not isinstance(filled, bool) else 0,
        instrument_token=instrument_id(key) if isinstance(key, str) and key else None,
    )
