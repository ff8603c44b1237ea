"""Brackets end to end on both stores: the API, the engine, the simulator's fills and
order updates. Partial fills arm the exits for what has filled and grow them; the
entry rejected fails the bracket with the broker's reason; at most one exit is placed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.sim.broker import Fills
from tests.support.eventually import eventually
from tests.support.factories import INFY
from tests.support.system import System, running_system

FAST = {"fill_sweep_ms": 200}


def bracket_body(quantity: int = 10, side: str = "BUY", **exits: str) -> dict[str, Any]:
    return {
        "entry": {
            "trigger_type": "single",
            "legs": [
                {
                    "condition": {"price": "1010"},
                    "orders": [
                        {
                            "instrument_token": INFY,
                            "exchange": "NSE",
                            "tradingsymbol": "INFY",
                            "transaction_type": side,
                            "quantity": quantity,
                            "product": "MIS",
                        }
                    ],
                }
            ],
        },
        "exits": exits or {"target": "1050", "stop": "980"},
    }


async def create(system: System, body: dict[str, Any]) -> dict[str, Any]:
    response = await system.client.post("/brackets", json=body, headers=system.auth())
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def read(system: System, bracket_id: str) -> dict[str, Any]:
    response = await system.client.get(f"/brackets/{bracket_id}", headers=system.auth())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def until(system: System, bracket_id: str, check: Any, within: float = 15) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def ok() -> bool:
        seen.clear()
        seen.update(await read(system, bracket_id))
        return bool(check(seen))

    await eventually(ok, within=within, interval=0.05)
    return seen


def exit_orders(system: System, bracket: dict[str, Any]) -> list[dict[str, Any]]:
    tags = {
        broker_tag(e["id"], leg, 0) for e in bracket["exits"] for leg in (Leg.FIRST, Leg.SECOND)
    }
    return [o for o in system.sim.orders() if o.get("tag") in tags]


async def test_partial_fills_arm_then_grow_the_exit_and_one_exit_is_placed(
    database_url: str,
) -> None:
    async with running_system(database_url, **FAST) as system:
        system.sim.broker.fills = Fills(parts=3)
        system.push(INFY, "1000")
        created = await create(system, bracket_body())
        assert created["status"] == "open"
        assert created["exits"] == []
        assert created["entry"]["status"] == "active"
        system.push(INFY, "1012")  # the entry fires: 4 of 10 fill at once
        armed = await until(system, created["id"], lambda b: b["armed"] >= 4)
        assert armed["status"] == "armed"
        assert armed["armed"] <= armed["filled"]
        assert len(armed["exits"]) == 1
        assert armed["exits"][0]["transaction_type"] == "SELL"
        assert armed["exits"][0]["product"] == "MIS"
        system.push(INFY, "1013")
        system.push(INFY, "1014")
        done = await until(system, created["id"], lambda b: b["status"] == "filled")
        assert (done["filled"], done["armed"]) == (10, 10)
        assert [e["quantity"] for e in done["exits"]] == [10]
        kinds = [e["kind"] for e in done["history"]]
        assert kinds[0] == "created"
        assert kinds[-1] == "entry_closed"
        assert set(kinds[1:-1]) == {"filled"}
        system.push(INFY, "1051")  # the target
        final = await until(system, created["id"], lambda b: b["exits"][0]["status"] == "placed")
        system.push(INFY, "975")  # past the stop: the oco already fired
        placed = exit_orders(system, final)
        assert len(placed) == 1
        assert (placed[0]["transaction_type"], placed[0]["quantity"]) == ("SELL", 10)


async def test_the_entry_rejected_fails_the_bracket_with_the_reason(database_url: str) -> None:
    async with running_system(database_url, **FAST) as system:
        system.sim.broker.funds = 100  # one rupee: the margin check rejects the entry
        system.push(INFY, "1000")
        created = await create(system, bracket_body())
        system.push(INFY, "1012")
        failed = await until(system, created["id"], lambda b: b["status"] == "failed")
        assert "margin" in (failed["error_message"] or "").lower()
        assert failed["entry_status"] == "REJECTED"
        assert failed["exits"] == []
        assert failed["filled"] == failed["armed"] == 0


async def test_bad_brackets_are_refused_naming_the_field(database_url: str) -> None:
    async with running_system(database_url) as system:
        system.push(INFY, "1000")
        wrong_side = bracket_body(target="970", stop="1050")
        response = await system.client.post("/brackets", json=wrong_side, headers=system.auth())
        assert response.status_code == 422, response.text
        assert "exits" in response.text
        off_grid = bracket_body(target="1050.01", stop="980")
        response = await system.client.post("/brackets", json=off_grid, headers=system.auth())
        assert response.status_code == 422
        assert "exits.target" in response.text
        missing = {"entry": bracket_body()["entry"]}
        response = await system.client.post("/brackets", json=missing, headers=system.auth())
        assert response.status_code == 422
        assert "exits" in response.text
        listed = await system.client.get("/triggers", headers=system.auth())
        assert listed.json() == []  # nothing half-written
        created = await create(system, bracket_body())
        edit = {"legs": [{"condition": {"price": "1020"}}]}
        response = await system.client.patch(
            f"/triggers/{created['id']}", json=edit, headers=system.auth()
        )
        assert response.status_code == 422
        assert "bracket's entry cannot be edited" in response.text
        assert (await system.trigger(created["id"]))["trigger_price_1"] == "1010"  # unchanged


async def test_a_fill_pushed_while_the_ticker_was_down_is_read_after_it_reconnects(
    database_url: str,
) -> None:
    """The order update is lost with the feed; the sweep after the reconnection (not the
    periodic one: 10 minutes here) reads the book and arms the exit."""
    async with running_system(database_url, fill_sweep_ms=600_000) as system:
        system.push(INFY, "1000")
        body = bracket_body()
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        body["entry"]["legs"][0]["condition"] = {"at": at.isoformat()}
        created = await create(system, body)
        await asyncio.sleep(0.5)  # the first sweep (at start) has run
        system.sim.ticker.begin_blackout(drop=True)
        # The time leg fires without ticks; the order fills at once, its update is lost.
        await until(system, created["id"], lambda b: b["entry"]["status"] == "placed")
        await asyncio.sleep(0.5)
        assert (await read(system, created["id"]))["armed"] == 0  # nobody told the engine
        system.sim.ticker.end_blackout()
        armed = await until(system, created["id"], lambda b: b["status"] == "filled")
        assert (armed["filled"], armed["armed"]) == (10, 10)
        assert [e["quantity"] for e in armed["exits"]] == [10]


async def test_a_trailing_stop_exit_follows_the_price_and_one_exit_is_placed(
    database_url: str,
) -> None:
    """The stop exit trails (i14-trail's trailing leg): 5.00 below the best price since
    the exit was armed; the price rises to 1030 and falls back to 1025: the trailing stop
    fires (SELL 10), the target never does."""
    async with running_system(database_url, **FAST) as system:
        system.push(INFY, "1000")
        body = bracket_body()
        body["exits"] = {"target": "1100", "trail": {"kind": "price", "offset": "5"}}
        created = await create(system, body)
        assert created["trail"]["offset"] == "5.00" or float(created["trail"]["offset"]) == 5
        assert created["stop"] is None
        system.push(INFY, "1012")
        armed = await until(system, created["id"], lambda b: b["status"] == "filled")
        (exit,) = armed["exits"]
        assert exit["legs"][0]["condition"]["trail"]["offset"] in ("5", "5.00", 5)
        for price in ("1015", "1020", "1030"):
            system.push(INFY, price)
            await asyncio.sleep(0.1)
        system.push(INFY, "1026")  # above the stop (1025): nothing yet
        await asyncio.sleep(0.3)
        assert (await read(system, created["id"]))["exits"][0]["status"] == "active"
        system.push(INFY, "1025")
        final = await until(system, created["id"], lambda b: b["exits"][0]["status"] == "placed")
        assert final["exits"][0]["triggered_leg"] == 1  # the stop, not the target
        placed = exit_orders(system, final)
        assert [(o["transaction_type"], o["quantity"]) for o in placed] == [("SELL", 10)]


async def test_a_bracket_needs_one_stop(database_url: str) -> None:
    async with running_system(database_url) as system:
        for exits in (
            {"target": "1100"},
            {"target": "1100", "stop": "990", "trail": {"offset": "5"}},
        ):
            body = {**bracket_body(), "exits": exits}
            response = await system.client.post("/brackets", json=body, headers=system.auth())
            assert response.status_code == 422, response.text
            assert "one of stop and trail" in response.text
        body = {
            **bracket_body(),
            "exits": {"target": "1100", "trail": {"kind": "bps", "offset": "10000"}},
        }
        response = await system.client.post("/brackets", json=body, headers=system.auth())
        assert response.status_code == 422
        assert "exits.trail.offset" in response.text
