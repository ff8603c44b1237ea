"""Kite's order endpoints: place an order, and find it again by its tag."""

from __future__ import annotations

import dataclasses
from typing import Any

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.model import OrderIntent
from hmt.core.prices import to_decimal
from hmt.core.types import Leg, OrderType
from hmt.kite.rest import KiteRest
from hmt.kite.tags import broker_tag, parse_tag

# Kite rejects MARKET and SL-M orders without protection since April 2026
# (FACTS.md 2.5); -1 asks the OMS for its automatic protection.
AUTO_MARKET_PROTECTION = -1
VARIETIES = frozenset({"regular", "amo"})


class KiteOrders:
    """The order port for a live Kite account."""

    def __init__(self, rest: KiteRest, *, market_protection: int = AUTO_MARKET_PROTECTION) -> None:
        self._rest = rest
        self._market_protection = market_protection

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        """The tag the order at `position` of this leg's basket carries: Kite's rule, in
        `hmt.kite.tags`."""
        return broker_tag(trigger_id, leg, position)

    async def place(self, intent: OrderIntent, *, variety: str = "regular") -> str:
        """Send a trigger's order; its Kite order id (a string: ids exceed 2^53)."""
        form = order_form(intent, market_protection=self._market_protection)
        return await self.place_form(form, variety=variety)

    async def place_stop(
        self, intent: OrderIntent, *, trigger_price: int, variety: str = "regular"
    ) -> str:
        """Send `intent` as a stop order held at the exchange: SL when it has a limit
        price, SL-M (protected, like MARKET) when it has none."""
        form = order_form(intent, market_protection=self._market_protection)
        form["order_type"] = "SL" if intent.order_type is OrderType.LIMIT else "SL-M"
        form["trigger_price"] = str(to_decimal(trigger_price, intent.price_divisor))
        return await self.place_form(form, variety=variety)

    async def place_form(self, form: dict[str, str], *, variety: str = "regular") -> str:
        """POST /orders/{variety} with `form` (variety: regular, amo, ...)."""
        if variety not in VARIETIES:
            raise ValueError(f"variety must be one of {sorted(VARIETIES)}, not {variety!r}")
        data = await self._rest.request("POST", f"/orders/{variety}", form=form)
        order_id = data.get("order_id") if isinstance(data, dict) else None
        if not isinstance(order_id, str | int) or isinstance(order_id, bool):
            # The OMS answered success but we cannot read the id: it may well exist.
            raise BrokerError(ErrorKind.AMBIGUOUS, f"success without an order id: {data!r}")
        return str(order_id)

    async def orders(self) -> list[OrderReport]:
        """Today's orders that carry one of our tags, with only our tags (one GET /orders).

        Kite adds its own tags (`mktp`, `mktp:2.00`) to every protected MARKET
        order, and the account may hold orders placed by hand or by other apps:
        none of those is ours, so reconciliation never hashes rows or reports
        "one tag, two orders" for them.
        """
        return [ours for report in await self._book() if (ours := only_our_tags(report))]

    async def find(self, tag: str) -> list[OrderReport]:
        """Every order in today's book that carries `tag` (as the book shows it)."""
        return [report for report in await self._book() if report.carries(tag)]

    async def _book(self) -> list[OrderReport]:
        data = await self._rest.request("GET", "/orders")
        if not isinstance(data, list):
            raise BrokerError(ErrorKind.AMBIGUOUS, "the order book is not a list")
        return [report_from_row(row) for row in data]

    async def history(self, order_id: str) -> list[OrderReport]:
        """The states one order went through, oldest first (GET /orders/{order_id})."""
        data = await self._rest.request("GET", f"/orders/{order_id}")
        if not isinstance(data, list):
            raise BrokerError(ErrorKind.AMBIGUOUS, "the order history is not a list")
        return [report_from_row(row) for row in data]


def order_form(intent: OrderIntent, *, market_protection: int) -> dict[str, str]:
    """The form fields of `POST /orders/{variety}` for `intent` (FACTS 2.2).

    LIMIT and SL carry `price`; SL and SL-M carry `trigger_price`; MARKET and
    SL-M carry `market_protection` (Kite rejects them without it since April
    2026, FACTS 2.5). Prices go out in rupees with the intent's own divisor.
    """
    kind = intent.order_type
    form = {
        "tradingsymbol": intent.tradingsymbol,
        "exchange": intent.exchange.value,
        "transaction_type": intent.side.value,
        "order_type": kind.value,
        "quantity": str(intent.quantity),
        "product": intent.product.value,
        "validity": intent.validity.value,
        "tag": intent.tag,
    }
    if kind in (OrderType.LIMIT, OrderType.SL):
        if intent.limit_price is None:
            raise ValueError(f"{kind} order for {intent.trigger_id} has no limit price")
        form["price"] = str(to_decimal(intent.limit_price, intent.price_divisor))
    if kind in (OrderType.SL, OrderType.SL_M):
        if intent.trigger_price is None:
            raise ValueError(f"{kind} order for {intent.trigger_id} has no trigger_price")
        form["trigger_price"] = str(to_decimal(intent.trigger_price, intent.price_divisor))
    if kind in (OrderType.MARKET, OrderType.SL_M):
        form["market_protection"] = str(market_protection)
    return form


def only_our_tags(report: OrderReport) -> OrderReport | None:
    """`report` with just the tags `hmt.kite.tags` could have made; None if it has none."""
    ours = tuple(t for t in dict.fromkeys((report.tag, *report.tags)) if t and parse_tag(t))
    if not ours:
        return None
    return dataclasses.replace(report, tag=ours[0], tags=ours)


def report_from_row(row: Any) -> OrderReport:
    """An order-book row as a report; a row we cannot read is an ambiguous answer."""
    if not isinstance(row, dict) or not isinstance(row.get("order_id"), str | int):
        raise BrokerError(ErrorKind.AMBIGUOUS, f"unreadable order-book row: {row!r:.200}")
    tags = row.get("tags") or ()
    tag = row.get("tag")
    filled = row.get("filled_quantity")
    token = row.get("instrument_token")
    return OrderReport(
        order_id=str(row["order_id"]),
        status=str(row.get("status") or ""),
        tag=tag if isinstance(tag, str) else None,
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        status_message=row.get("status_message")
        if isinstance(row.get("status_message"), str)
        else None,
        filled_quantity=filled if isinstance(filled, int) else 0,
        instrument_token=token if isinstance(token, int) and not isinstance(token, bool) else None,
    )
