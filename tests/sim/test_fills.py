"""The simulator's fill model: partial fills, MARKET at the next tick, their order updates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hmt.sim.broker import Broker, Fills
from hmt.sim.prices import Market
from hmt.sim.simulator import Simulator
from hmt.sim.universe import Universe
from tests.sim.support import INFY


@pytest.fixture
def broker() -> Broker:
    market = Market(Universe(), clock=lambda: 1_767_000_000.0)
    market.push_price(INFY, "1500")
    return Broker(market.universe, market, seed=1, user_id="SIM001")


def place(broker: Broker, order_type: str, quantity: int = 10, **extra: Any) -> str:
    form = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "order_type": order_type,
        "quantity": str(quantity),
        "product": "MIS",
        "market_protection": "2",
        "tag": "hmtbracket1",
    }
    form.update({k: str(v) for k, v in extra.items()})
    return broker.place("regular", form)


def row(broker: Broker, order_id: str) -> dict[str, Any]:
    return next(r for r in broker.book() if r["order_id"] == order_id)


def test_an_order_fills_in_parts_one_per_trade_with_an_update_each(broker: Broker) -> None:
    updates: list[dict[str, Any]] = []
    broker.listeners.append(updates.append)
    broker.fills = Fills(parts=3)
    order_id = place(broker, "MARKET", quantity=10)
    assert (row(broker, order_id)["status"], row(broker, order_id)["filled_quantity"]) == (
        "OPEN",
        4,
    )
    broker.market.push_price(INFY, "1501")
    broker.market.push_price(INFY, "1502")
    final = row(broker, order_id)
    assert (final["status"], final["filled_quantity"]) == ("COMPLETE", 10)
    mine = [(u["status"], u["filled_quantity"]) for u in updates if u["order_id"] == order_id]
    assert mine == [("UPDATE", 4), ("UPDATE", 8), ("COMPLETE", 10)]
    assert [t["quantity"] for t in broker.order_trades(order_id)] == [4, 4, 2]
    assert final["average_price"] == (1500 * 4 + 1501 * 4 + 1502 * 2) / 10


def test_a_partly_filled_order_cancelled_keeps_its_fills(broker: Broker) -> None:
    broker.fills = Fills(parts=2)
    order_id = place(broker, "LIMIT", quantity=10, price="1500")
    broker.cancel("regular", order_id)
    final = row(broker, order_id)
    assert (final["status"], final["filled_quantity"], final["cancelled_quantity"]) == (
        "CANCELLED",
        5,
        5,
    )


def test_market_at_the_next_tick(broker: Broker) -> None:
    broker.fills = Fills(market="next_tick")
    order_id = place(broker, "MARKET", quantity=3)
    assert (row(broker, order_id)["status"], row(broker, order_id)["filled_quantity"]) == (
        "OPEN",
        0,
    )
    broker.market.push_price(INFY, "1503")
    final = row(broker, order_id)
    assert (final["status"], final["average_price"]) == ("COMPLETE", 1503)


def test_bad_fill_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="parts"):
        Fills(parts=0)
    with pytest.raises(ValueError, match="market"):
        Fills(market="later")


async def test_the_control_endpoint_sets_and_reset_restores() -> None:
    async with Simulator(seed=3) as sim, httpx.AsyncClient(base_url=sim.api_url) as client:
        answer = await client.post("/_sim/fills", json={"parts": 4, "market": "next_tick"})
        assert answer.json()["data"] == {"parts": 4, "market": "next_tick"}
        assert sim.broker.fills == Fills(4, "next_tick")
        bad = await client.post("/_sim/fills", json={"parts": "x"})
        assert bad.status_code == 400
        assert "parts" in bad.json()["message"]
        await client.post("/_sim/reset")
        assert (await client.get("/_sim/fills")).json()["data"] == {"parts": 1, "market": "now"}
