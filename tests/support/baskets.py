"""Baskets for tests: a trigger whose leg places several orders, and reading their rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.model import LegSpec, OrderSpec, Trigger
from hmt.core.types import Exchange, Leg, OrderType, Product, Side
from hmt.store.tables import trigger_orders
from hmt.store.triggers import TriggerStore
from tests.support.factories import INFY, make_trigger


def make_basket(size: int = 20, *, side: Side = Side.BUY, **overrides: Any) -> Trigger:
    """A single trigger on INFY whose leg places `size` MARKET orders of INFY, the k-th
    for k + 1 shares (so each order is recognisable at the broker by its quantity)."""
    orders = tuple(
        OrderSpec(
            instrument_token=INFY,
            exchange=Exchange.NSE,
            tradingsymbol="INFY",
            side=side,
            quantity=k + 1,
            product=Product.CNC,
            order_type=OrderType.MARKET,
        )
        for k in range(size)
    )
    fields: dict[str, Any] = {"trigger_price_1": 101_000, "side": side, "quantity": 1}
    fields.update(overrides)
    return make_trigger(leg_specs=(LegSpec(orders=orders),), **fields)


async def order_rows(store: TriggerStore, trigger_id: str, leg: Leg = Leg.FIRST) -> list[Any]:
    """The stored rows of a basket's orders (`hmt_trigger_orders`), by position."""
    query = (
        select(trigger_orders)
        .where(trigger_orders.c.trigger_id == trigger_id, trigger_orders.c.leg == int(leg))
        .order_by(trigger_orders.c.position)
    )

    async def work(conn: AsyncConnection) -> list[Any]:
        return list((await conn.execute(query)).all())

    return await store.db.transaction(work, write=False)
