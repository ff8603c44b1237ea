"""The API on its own thread (HMT_API_LOOP=thread): changes in the book, load shed, ticks on."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from hmt.api.limits import SHED_RETRY_AFTER_S, InFlightLimit
from hmt.compose import bridge
from hmt.config import ApiLoop
from hmt.engine.bridge import EngineLoop
from hmt.engine.instruments import Resolution
from hmt.store.db import DbState
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065
STALL_S = 20.0  # a stalled handler's bound, far beyond every wait below


def _api_thread_alive() -> bool:
    return any(t.name == "hmt-api" and t.is_alive() for t in threading.enumerate())


async def test_every_change_is_in_the_engine_book_when_its_response_returns(
    database_url: str,
) -> None:
    """Create, edit, pause, resume and cancel served from the API's thread are each in the
    engine's book (on the engine's loop) the moment their response arrives."""
    async with running_system(database_url) as system:
        assert system.runtime.settings.api_loop is ApiLoop.THREAD
        assert _api_thread_alive()
        book = lambda: system.runtime.engine.book  # noqa: E731 (resync may replace it)
        system.push(INFY, "1600.00")
        made = await system.create(trigger_price_1="1700.00")
        armed = book().get(made["id"])
        assert armed is not None
        assert armed.trigger_price_1 == 170_000
        many = await system.client.post(
            "/triggers/bulk",
            json={"triggers": [_infy("1701.00"), _infy("1702.00")]},
            headers=system.auth(),
        )
        assert many.status_code == 201, many.text
        assert all(t["id"] in book() for t in many.json()["triggers"])
        path = f"/triggers/{made['id']}"
        edited = await system.client.patch(
            path, json={"trigger_price_1": "1750.00"}, headers=system.auth()
        )
        assert edited.status_code == 200, edited.text
        assert (book().get(made["id"]) or armed).trigger_price_1 == 175_000
        await system.client.post(f"{path}/pause", headers=system.auth())
        assert made["id"] not in book()
        await system.client.post(f"{path}/resume", headers=system.auth())
        assert made["id"] in book()
        await system.client.delete(path, headers=system.auth())
        assert made["id"] not in book()


async def test_a_request_over_the_bound_is_refused_at_once_while_the_others_wait(
    sqlite_url: str,
) -> None:
    """With HMT_API_MAX_IN_FLIGHT requests stalled in their handlers, the next is a 503 with
    Retry-After and a Problem body, answered while they are still stalled; /health answers."""
    async with running_system(sqlite_url, api_max_in_flight=2) as system:
        gate = threading.Event()
        entered = _stall(system, gate, blocking_thread=False)
        try:
            stalled = [
                asyncio.create_task(system.create(trigger_price_1=price))
                for price in ("9001", "9002")
            ]
            await eventually(lambda: entered[0] == 2, within=10)
            extra = await system.client.post("/triggers", json=_infy("9003"), headers=system.auth())
            assert extra.status_code == 503
            assert extra.headers["retry-after"] == str(SHED_RETRY_AFTER_S)
            body = extra.json()
            assert body["errors"][0]["rule"] == "max_in_flight"
            assert "HMT_API_MAX_IN_FLIGHT" in body["errors"][0]["message"]
            assert (await system.client.get("/health")).status_code == 200
            assert not any(task.done() for task in stalled)  # refused while they wait
        finally:
            gate.set()
        assert [(await task)["status"] for task in stalled] == ["active", "active"]
        after = await system.client.post("/triggers", json=_infy("9004"), headers=system.auth())
        assert after.status_code == 201


async def test_ticks_fire_orders_while_the_api_thread_is_stalled(database_url: str) -> None:
    """A handler that stalls the API's whole thread delays no tick: the engine still
    places an order for a trigger that the price crosses meanwhile."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        gate = threading.Event()
        entered = _stall(system, gate, blocking_thread=True)
        try:
            stalled = asyncio.create_task(system.create(trigger_price_1="9999.00"))
            await eventually(lambda: entered[0] == 1, within=10)
            system.push(INFY, "1610.00")
            await eventually(lambda: len(system.sim.orders()) == 1, within=10)
            await eventually(lambda: system.runtime.engine.stats.triggered_orders == 1, within=10)
            assert not stalled.done()  # the API was stalled throughout
        finally:
            gate.set()
        await stalled
        assert (await system.settled(trigger["id"]))["status"] == "placed"


def test_in_flight_limit_sheds_at_once_and_counts_what_it_refused() -> None:
    """The middleware alone: over its limit it answers 503 without calling the app."""

    async def scenario() -> None:
        release, calls = asyncio.Event(), [0]

        async def app(scope: Any, receive: Any, send: Any) -> None:
            calls[0] += 1
            await release.wait()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limit = InFlightLimit(app, limit=1)
        transport = httpx.ASGITransport(app=limit)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.get("/triggers"))
            await eventually(lambda: calls[0] == 1, within=5)
            started = time.perf_counter()
            refused = await client.get("/triggers")
            assert time.perf_counter() - started < STALL_S
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == str(SHED_RETRY_AFTER_S)
            assert calls[0] == 1
            assert limit.shed == 1
            release.set()
            assert (await first).status_code == 204
            assert limit.in_flight == 0

    asyncio.run(scenario())


def _stall(system: System, gate: threading.Event, *, blocking_thread: bool) -> list[int]:
    """Make every create's instrument check wait on `gate`: on a worker thread (the API's
    loop stays free) or, `blocking_thread`, on the API's own thread (its loop stalls)."""
    master = system.runtime.instruments
    resolve = master.resolve
    entered = [0]

    async def stalled(*args: Any) -> Resolution:
        entered[0] += 1
        if blocking_thread:
            gate.wait(STALL_S)  # the point: this thread's loop stops
        else:
            await asyncio.to_thread(gate.wait, STALL_S)
        return await resolve(*args)

    master.resolve = stalled  # type: ignore[method-assign]
    return entered


def _infy(price: str) -> dict[str, Any]:
    return {
        "instrument_token": INFY,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "trigger_type": "single",
        "transaction_type": "BUY",
        "trigger_price_1": price,
        "quantity": 1,
        "product": "CNC",
    }


async def test_the_api_threads_own_database_is_not_the_engines_reconnection_signal(
    sqlite_url: str,
) -> None:
    """The bridge's own connections coming back hold no firing (the API claims nothing); the
    engine's database coming back does (its claims may have been lost with it)."""
    async with running_system(sqlite_url) as system:
        engine = system.runtime.engine
        await eventually(lambda: not engine.holding, within=10)
        api = await bridge(system.runtime, EngineLoop(asyncio.get_running_loop()))
        try:
            assert api.db is not system.runtime.db
            assert api.db.reconnected == []
            api.db._unreachable(ConnectionError("gone"))
            await api.triggers.count("alice")  # answers: the bridge's db is back
            assert api.db.health.state is DbState.OK
            assert not engine.holding
            # Seen from a listener after the engine's: another task's query may bring the
            # database back before the ping does, and the reconciliation may end before
            # the ping returns, so `holding` is read at the moment of reconnection.
            held: list[bool] = []
            system.runtime.db.reconnected.append(lambda: held.append(engine.holding))
            system.runtime.db._unreachable(ConnectionError("gone"))
            await system.runtime.db.ping()
            assert held == [True]  # the engine's own reconnection holds firing at once
            await eventually(lambda: not engine.holding, within=10)
        finally:
            await api.close()
