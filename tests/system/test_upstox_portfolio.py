"""Upstox's order updates end to end, on both stores: the portfolio stream tells the fills of
an entry's fill at once, so a bracket's exit arms without waiting for the sweep (set to ten
minutes here, so that only the stream can arm it in time); the sweep stays the fallback."""

from __future__ import annotations

import asyncio
from typing import Any

from hmt.core.types import Leg
from hmt.sim.upstox.server import UpstoxSim
from tests.support.eventually import eventually
from tests.support.system import System, running_system

SLOW_SWEEP = {"fill_sweep_ms": 600_000}


def bracket_body(system: System) -> dict[str, Any]:
    listed = system.side.listed  # RELIANCE, at 2500.00 in the simulator
    order = {
        "instrument_token": listed.token,
        "exchange": listed.exchange,
        "tradingsymbol": listed.tradingsymbol,
        "transaction_type": "BUY",
        "quantity": 3,
        "product": "MIS",
    }
    return {
        "entry": {
            "trigger_type": "single",
            "legs": [{"condition": {"price": "2510"}, "orders": [order]}],
        },
        "exits": {"target": "2550", "stop": "2480"},
    }


async def read(system: System, bracket_id: str) -> dict[str, Any]:
    response = await system.client.get(f"/brackets/{bracket_id}", headers=system.auth())
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def until(system: System, bracket_id: str, check: Any, within: float) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def ok() -> bool:
        seen.clear()
        seen.update(await read(system, bracket_id))
        return bool(check(seen))

    await eventually(ok, within=within, interval=0.05)
    return seen


async def started(system: System) -> UpstoxSim:
    """The simulator, once the engine's portfolio stream is up and its first sweeps ran."""
    sim: UpstoxSim = system.sim
    await eventually(lambda: sim.portfolio_streams == 1, within=10)
    fills = system.runtime.fills
    assert fills is not None
    await eventually(lambda: fills.sweeps >= 1)
    await asyncio.sleep(0.3)  # the sweep the stream's connection poked has run too
    return sim


async def test_the_stream_arms_a_brackets_exit_at_once_with_the_sweep_slow(
    database_url: str,
) -> None:
    async with running_system(database_url, broker="upstox", **SLOW_SWEEP) as system:
        sim = await started(system)
        fills = system.runtime.fills
        assert fills is not None
        system.side.push(system.token, "2500")
        response = await system.client.post(
            "/brackets", json=bracket_body(system), headers=system.auth()
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["exits"] == []
        system.side.push(system.token, "2512")  # the entry fires and fills at once
        armed = await until(system, created["id"], lambda b: b["status"] == "filled", within=5)
        assert (armed["filled"], armed["armed"]) == (3, 3)
        (exit,) = armed["exits"]
        assert (exit["transaction_type"], exit["quantity"]) == ("SELL", 3)
        assert fills.updates >= 1  # the stream's updates reached the fills
        assert sim.stream_updates >= 4  # the entry's statuses, up to complete
        # The exit works: the target fires one SELL of 3.
        system.side.push(system.token, "2551")
        final = await until(
            system, created["id"], lambda b: b["exits"][0]["status"] == "placed", within=10
        )
        exit_id = final["exits"][0]["id"]
        exit_tags = {system.side.tag(exit_id, leg) for leg in (Leg.FIRST, Leg.SECOND)}
        sells = [o for o in system.side.orders() if o["tag"] in exit_tags]
        assert [(o["transaction_type"], o["quantity"]) for o in sells] == [("SELL", 3)]


async def test_a_fill_missed_while_the_stream_was_down_is_read_when_it_reconnects(
    database_url: str,
) -> None:
    """The fallback: the update is lost with the stream; the sweep its reconnection pokes
    (not the periodic one: ten minutes here) reads the book and arms the exit."""
    async with running_system(
        database_url, broker="upstox", reconnect_delay_ms=3000, **SLOW_SWEEP
    ) as system:
        sim = await started(system)
        system.side.push(system.token, "2500")
        response = await system.client.post(
            "/brackets", json=bracket_body(system), headers=system.auth()
        )
        assert response.status_code == 201, response.text
        created = response.json()
        sim.drop_portfolio()
        await eventually(lambda: sim.portfolio_streams == 0)
        sent = sim.stream_updates
        system.side.push(system.token, "2512")  # fires and fills while the stream is down
        await until(system, created["id"], lambda b: b["entry"]["status"] == "placed", within=5)
        assert sim.stream_updates == sent  # nobody was told
        assert (await read(system, created["id"]))["armed"] == 0
        armed = await until(system, created["id"], lambda b: b["status"] == "filled", within=10)
        assert (armed["filled"], armed["armed"]) == (3, 3)
        assert sim.portfolio_streams == 1
