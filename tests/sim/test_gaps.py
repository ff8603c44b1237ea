"""Scripted gaps over loopback: a jump, and outages during which the price goes out and back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kiteconnect import KiteTicker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hmt.sim.gaps import excursion
from hmt.sim.simulator import Simulator
from hmt.waits import within
from tests.sim.support import INFY, NIFTY, eventually

PARSER = KiteTicker("key", "token")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # Heartbeats every 0.5 s: often enough that an outage of 1.5 s would show some,
    # rare enough that none is in flight when an outage starts right after one arrived.
    async with Simulator(seed=7, heartbeat_interval=0.5) as running:
        yield running


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sim.api_url}/_sim") as client:
        yield client


def url(sim: Simulator) -> str:
    return f"{sim.ws_url}?api_key={sim.api_key}&access_token={sim.access_token}"


async def subscribe_full(ws: ClientConnection, token: int) -> dict[str, Any]:
    await ws.send(json.dumps({"a": "subscribe", "v": [token]}))
    await ws.send(json.dumps({"a": "mode", "v": ["full", [token]]}))
    while True:
        ticks = await data(ws)
        if ticks and ticks[-1]["mode"] == "full":
            return ticks[-1]


async def data(ws: ClientConnection) -> list[dict[str, Any]]:
    """The next binary frame with ticks (heartbeats skipped)."""
    while True:
        message = await within(ws.recv(), 10)
        if isinstance(message, bytes) and len(message) > 4:
            ticks: list[dict[str, Any]] = PARSER._parse_binary(message)
            return ticks


async def drain(ws: ClientConnection) -> None:
    """Read until the connection ends (raises ConnectionClosed)."""
    while True:
        await within(ws.recv(), 10)


async def heartbeat(ws: ClientConnection) -> None:
    while await within(ws.recv(), 10) != b"\x00":
        pass


async def ohlc(sim: Simulator, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"token {sim.api_key}:{sim.access_token}"}
    async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as kite:
        answer = await kite.get("/quote/ohlc", params={"i": key})
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()["data"][key]
    return found


def test_the_excursion_goes_out_to_the_level_and_back_on_the_grid() -> None:
    path = excursion(2_500_000, 2_400_000, 2_500_000, 4, 5)
    assert path == [2_450_000, 2_400_000, 2_450_000, 2_500_000]
    odd = excursion(155_000, 150_010, 155_000, 5, 10)
    assert odd[2] == 150_010
    assert odd[-1] == 155_000
    assert all(p % 10 == 0 for p in odd)


async def test_a_jump_is_the_next_tick_with_nothing_between(
    sim: Simulator, control: httpx.AsyncClient
) -> None:
    """The client's next tick is at the far price, and the day's high moved with it."""
    async with connect(url(sim)) as ws:
        first = await subscribe_full(ws, NIFTY)
        assert first["last_price"] == 25000.0
        answer = await control.post("/gaps/jump", json={"token": NIFTY, "price": "26250.5"})
        assert answer.json()["data"]["last_price"] == "26250.5"
        [tick] = await data(ws)
    assert tick["last_price"] == 26250.5
    assert tick["ohlc"]["high"] == 26250.5
    assert (await ohlc(sim, "NSE:NIFTY 50"))["ohlc"]["high"] == 26250.5


async def test_outage_keeping_the_socket_sends_nothing_then_shows_the_excursion(
    sim: Simulator, control: httpx.AsyncClient
) -> None:
    """While the feed is out the client gets no tick and no heartbeat; the first tick
    after it is at the return price with the day's low at the outage's level, and
    /quote/ohlc says the same."""
    async with connect(url(sim)) as ws:
        before = await subscribe_full(ws, NIFTY)
        assert before["ohlc"]["low"] == 25000.0
        await heartbeat(ws)  # in step with the heartbeats: none is in flight below
        answer = await control.post(
            "/gaps/outage",
            json={"token": NIFTY, "level": "23800", "seconds": 1.5, "steps": 6},
        )
        assert answer.status_code == 200
        assert answer.json()["data"]["socket"] == "keep"
        during: list[str | bytes] = []
        while True:
            message = await within(ws.recv(), 10)
            if sim.gaps.active:
                during.append(message)
            elif isinstance(message, bytes) and len(message) > 4:
                after = PARSER._parse_binary(message)
                break
    assert during == []
    assert [t["last_price"] for t in after] == [25000.0]
    assert after[0]["ohlc"]["low"] == 23800.0
    assert after[0]["ohlc"]["high"] == 25000.0
    quote = await ohlc(sim, "NSE:NIFTY 50")
    assert quote["last_price"] == 25000
    assert quote["ohlc"]["low"] == 23800
    state = (await control.get("/gaps")).json()["data"]
    assert (state["done"], state["trades"], state["low"]) == (True, 6, "23800")


async def test_outage_dropping_the_socket_refuses_reconnects_and_stops_still_trigger(
    sim: Simulator, control: httpx.AsyncClient
) -> None:
    """The connection is cut, reconnects fail with 503 until the outage ends; the
    exchange kept trading: a resting SELL SL-M triggered on the excursion, and the
    snapshot after reconnecting carries the day's low."""
    headers = {"Authorization": f"token {sim.api_key}:{sim.access_token}"}
    async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as kite:
        placed = await kite.post(
            "/orders/regular",
            data={
                "exchange": "NSE",
                "tradingsymbol": "INFY",
                "transaction_type": "SELL",
                "order_type": "SL-M",
                "trigger_price": "1500",
                "market_protection": "-1",
                "quantity": "1",
                "product": "CNC",
            },
        )
    order_id = placed.json()["data"]["order_id"]
    async with connect(url(sim)) as ws:
        await subscribe_full(ws, INFY)
        await control.post(
            "/gaps/outage",
            json={
                "token": INFY,
                "level": "1480",
                "back": "1550",
                "seconds": 2,
                "steps": 4,
                "socket": "drop",
            },
        )
        with pytest.raises(ConnectionClosed):
            await drain(ws)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(sim)):
            pass
    assert refused.value.response.status_code == 503
    await eventually(lambda: not sim.gaps.active)
    async with connect(url(sim)) as ws:
        snapshot = await subscribe_full(ws, INFY)
    assert snapshot["last_price"] == 1550.0
    assert snapshot["ohlc"]["low"] == 1480.0
    [order] = [o for o in sim.orders() if o["order_id"] == order_id]
    assert order["status"] == "COMPLETE"
    assert order["average_price"] <= 1500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"level": "24000", "seconds": 1}, "token"),
        ({"token": NIFTY, "seconds": 1}, "level"),
        ({"token": NIFTY, "level": "24000"}, "seconds"),
        ({"token": NIFTY, "level": "24000", "seconds": 0}, "seconds"),
        ({"token": NIFTY, "level": "24000.01", "seconds": 1}, "level"),
        ({"token": NIFTY, "level": "24000", "seconds": 1, "steps": 1}, "steps"),
        ({"token": NIFTY, "level": "24000", "seconds": 1, "socket": "half"}, "socket"),
        ({"token": NIFTY, "level": "24000", "seconds": 1, "colour": "red"}, "colour"),
        ({"token": 1, "level": "24000", "seconds": 1}, "token"),
    ],
)
async def test_bad_outages_are_refused_naming_the_field(
    sim: Simulator, control: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await control.post("/gaps/outage", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(field)
    assert not sim.gaps.active
