"""The engine end to end over real sockets: API -> store -> book <- ticks <- simulator -> orders.

Each test runs on SQLite and on PostgreSQL; the simulator's order book is the
judge of what was placed. The core behaviours (the exact price, oco, one order
per trigger) run against both brokers' simulators, Kite's and Upstox's.
"""

from __future__ import annotations

import pytest

from hmt.core.types import Leg
from tests.support.eventually import eventually
from tests.support.system import BROKERS, running_system

INFY = 408065


@pytest.mark.parametrize("broker", BROKERS)
async def test_single_buy_and_sell_fire_at_the_boundary_not_one_tick_short(
    database_url: str, broker: str
) -> None:
    """BUY fires at exactly its price and SELL at exactly its price; one tick short does not."""
    async with running_system(database_url, broker=broker) as system:
        token = system.token
        system.push(token, "1600.00")
        buy = await system.create(trigger_price_1="1610.00")
        sell = await system.create(transaction_type="SELL", trigger_price_1="1590.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 160_000)
        system.push(token, "1609.90")  # short of the BUY by a tick (Kite's INFY: 0.10)
        system.push(token, "1590.10")  # short of the SELL
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 159_010)
        assert system.orders() == []
        system.push(token, "1610.00")
        placed = await system.settled(buy["id"])
        system.push(token, "1590.00")
        sold = await system.settled(sell["id"])
        for record in (placed, sold):
            assert record["status"] == "placed"
            tag = system.side.tag(record["id"], Leg.FIRST)
            (order,) = system.orders_tagged(tag)
            assert record["order_id"] == order["order_id"]
        assert placed["triggered_price"] == "1610"
        assert [e["kind"] for e in placed["events"]] == [
            "created",
            "fired",
            "claimed",
            "order_sent",
            "placed",
        ]


@pytest.mark.parametrize("broker", BROKERS)
async def test_oco_fires_one_leg_and_the_other_never_places(database_url: str, broker: str) -> None:
    """An oco's target fires; later the price crosses the stop-loss and nothing more is sent."""
    async with running_system(database_url, broker=broker) as system:
        token = system.token
        system.push(token, "1600.00")
        await system.create(trigger_price_1="9999.00")  # keeps the instrument subscribed
        oco = await system.create(
            trigger_type="oco",
            transaction_type="SELL",
            trigger_price_1="1550.00",
            trigger_price_2="1650.00",
        )
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 160_000)
        system.push(token, "1650.50")
        record = await system.settled(oco["id"])
        assert record["triggered_leg"] == 2
        system.push(token, "1500.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 150_000)
        assert len(system.orders_tagged(system.side.tag(oco["id"], Leg.SECOND))) == 1
        assert system.orders_tagged(system.side.tag(oco["id"], Leg.FIRST)) == []
        assert len(system.orders()) == 1


@pytest.mark.parametrize("broker", BROKERS)
async def test_repeated_and_jumping_ticks_place_once(database_url: str, broker: str) -> None:
    """Many ticks past the price, in quick succession, make exactly one order."""
    async with running_system(database_url, broker=broker) as system:
        token = system.token
        system.push(token, "1600.00")
        await system.create(trigger_price_1="9999.00")  # keeps the instrument subscribed
        trigger = await system.create(trigger_price_1="1601.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 160_000)
        for price in ("1601.00", "1601.00", "1605.00", "1601.00", "1700.00"):
            system.push(token, price)
        await system.settled(trigger["id"])
        await eventually(lambda: system.runtime.engine.last_ltp.get(token) == 170_000)
        assert len(system.orders_tagged(system.side.tag(trigger["id"], Leg.FIRST))) == 1
        assert len(system.orders()) == 1


async def test_create_warns_when_it_already_holds_and_fires_on_the_next_tick(
    database_url: str,
) -> None:
    """A trigger already true at the last price says so, and fires on the next tick."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # subscribes INFY
        await eventually(lambda: INFY in system.runtime.engine.last_ltp)
        trigger = await system.create(trigger_price_1="1500.00")
        assert any("already holds" in w for w in trigger["warnings"])
        assert system.sim.orders() == []
        system.push(INFY, "1600.10")
        assert (await system.settled(trigger["id"]))["status"] == "placed"


async def test_cancelled_trigger_never_fires(database_url: str) -> None:
    """A trigger cancelled through the API is out of the engine before the response returns."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="9999.00")  # keeps INFY subscribed throughout
        trigger = await system.create(trigger_price_1="1610.00")
        response = await system.client.delete(f"/triggers/{trigger['id']}", headers=system.auth())
        assert response.json()["status"] == "cancelled"
        assert trigger["id"] not in system.runtime.engine.book
        system.push(INFY, "1620.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 162_000)
        assert system.sim.orders() == []
        # Cancelling twice is idempotent (issue 11): the same record, and still no order.
        again = await system.client.delete(f"/triggers/{trigger['id']}", headers=system.auth())
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"
        assert again.json()["updated_at"] == response.json()["updated_at"]
        assert system.sim.orders() == []


@pytest.mark.parametrize("prefix", ["", "/hmt-trigger-engine"])
async def test_engine_control_and_auth(database_url: str, prefix: str) -> None:
    """Health is public; stats needs a token; start and stop need an operator token."""
    async with running_system(database_url) as system:
        client = system.client
        health = await client.get(f"{prefix}/health")
        assert health.json()["status"] in ("ok", "degraded")
        assert (await client.get(f"{prefix}/stats")).status_code == 401
        stats = await client.get(f"{prefix}/stats", headers=system.auth())
        assert stats.json()["state"] == "running"
        assert (await client.post(f"{prefix}/stop", headers=system.auth())).status_code == 403
        stopped = await client.post(f"{prefix}/stop", headers=system.auth(system.operator_token))
        assert stopped.json() == {"state": "stopped"}
        assert (await client.get(f"{prefix}/health")).json()["status"] == "disabled"
        started = await client.post(f"{prefix}/start", headers=system.auth(system.operator_token))
        assert started.json() == {"state": "running"}


async def test_the_loaded_book_is_kept_out_of_gc_scans(database_url: str) -> None:
    """After start-up the live objects (the book above all) are frozen out of the collector."""
    import gc

    async with running_system(database_url) as system:
        await system.create(trigger_price_1="1610.00")
        assert gc.get_freeze_count() > 0
        assert system.runtime.engine.state.value == "running"
