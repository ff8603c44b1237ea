"""The ticker over loopback WebSockets: auth, modes, heartbeats, postbacks and its faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kiteconnect import KiteTicker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from hmt.sim.session import checksum
from hmt.sim.simulator import Simulator
from hmt.sim.ticker import MALFORMED
from hmt.waits import within
from tests.sim.support import INFY, NIFTY, SBIN, assert_same_shape, fixture_json

PARSER = KiteTicker("key", "token")


def url(sim: Simulator, token: str | None = None) -> str:
    return f"{sim.ws_url}?api_key={sim.api_key}&access_token={token or sim.access_token}"


@pytest.fixture
async def ws(sim: Simulator) -> AsyncIterator[ClientConnection]:
    async with connect(url(sim)) as connection:
        yield connection


async def send(ws: ClientConnection, action: str, value: Any) -> None:
    await ws.send(json.dumps({"a": action, "v": value}))


async def next_ticks(ws: ClientConnection) -> list[dict[str, Any]]:
    """The next binary frame with data, decoded by kiteconnect (heartbeats skipped)."""
    while True:
        message = await within(ws.recv(), 10)
        if isinstance(message, bytes) and len(message) > 4:
            ticks: list[dict[str, Any]] = PARSER._parse_binary(message)
            return ticks


async def next_text(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = await within(ws.recv(), 10)
        if isinstance(message, str):
            parsed: dict[str, Any] = json.loads(message)
            return parsed


async def test_bad_credentials_fail_the_upgrade_with_403(sim: Simulator) -> None:
    """An unknown access token (or api key) is refused at the handshake with 403."""
    for bad in (
        url(sim, "nope"),
        f"{sim.ws_url}?api_key=x&access_token={sim.access_token}",
        sim.ws_url,
    ):
        with pytest.raises(InvalidStatus) as caught:
            async with connect(bad):
                pass
        assert caught.value.response.status_code == 403


async def test_subscribe_then_each_mode(sim: Simulator, ws: ClientConnection) -> None:
    """Subscribing gives a quote snapshot; ltp and full follow the mode message; pushes stream."""
    await send(ws, "subscribe", [INFY])
    [snapshot] = await next_ticks(ws)
    assert (snapshot["mode"], snapshot["last_price"]) == ("quote", 1550.0)
    for mode in ("ltp", "full", "quote"):
        await send(ws, "mode", [mode, [INFY]])
        [tick] = await next_ticks(ws)
        assert tick["mode"] == mode
    await send(ws, "mode", ["full", [INFY]])
    await next_ticks(ws)
    sim.push_price(INFY, "1601.20")
    [tick] = await next_ticks(ws)
    assert (tick["mode"], tick["last_price"], tick["instrument_token"]) == ("full", 1601.2, INFY)
    assert tick["depth"]["sell"][0]["price"] == 1601.2
    assert tick["exchange_timestamp"] is not None


async def test_every_push_is_delivered_in_order(sim: Simulator, ws: ClientConnection) -> None:
    """Ticks are not coalesced: three quick pushes arrive as three packets, in order."""
    await send(ws, "mode", ["ltp", [SBIN]])
    await next_ticks(ws)
    for price in ("851", "852.05", "850.5"):
        sim.push_price(SBIN, price)
    prices: list[float] = []
    while len(prices) < 3:
        prices += [t["last_price"] for t in await next_ticks(ws)]
    assert prices == [851.0, 852.05, 850.5]


async def test_index_ticks_in_quote_and_full(sim: Simulator, ws: ClientConnection) -> None:
    """NIFTY 50 streams 28-byte quote and 32-byte full packets, not tradable."""
    await send(ws, "mode", ["quote", [NIFTY]])
    [quote] = await next_ticks(ws)
    await send(ws, "mode", ["full", [NIFTY]])
    [full] = await next_ticks(ws)
    assert quote["tradable"] is False
    assert quote["mode"] == "quote"
    assert full["mode"] == "full"
    assert "exchange_timestamp" in full


async def test_unsubscribe_stops_the_stream(sim: Simulator, ws: ClientConnection) -> None:
    """After unsubscribe, pushes on that token no longer arrive."""
    await send(ws, "mode", ["ltp", [INFY, SBIN]])
    await next_ticks(ws)
    await send(ws, "unsubscribe", [INFY])
    await send(ws, "mode", ["ltp", [SBIN]])  # its snapshot marks both messages as handled
    await next_ticks(ws)
    sim.push_price(INFY, "1600")
    sim.push_price(SBIN, "860")
    assert [t["instrument_token"] for t in await next_ticks(ws)] == [SBIN]


async def test_idle_connections_get_one_byte_heartbeats(ws: ClientConnection) -> None:
    """With nothing to stream the server sends 1-byte binary heartbeats."""
    message = await within(ws.recv(), 10)
    assert message == b"\x00"


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        json.dumps({"a": "dance", "v": []}),
        json.dumps({"a": "subscribe", "v": ["1"]}),
        json.dumps({"a": "mode", "v": ["loud", [INFY]]}),
        json.dumps({"a": "subscribe", "v": [7]}),
    ],
)
async def test_bad_messages_get_an_error_message_not_a_disconnect(
    ws: ClientConnection, bad: str
) -> None:
    """A message the server cannot use is answered with a Kite `error` text message."""
    await ws.send(bad)
    reply = await next_text(ws)
    assert reply["type"] == "error"
    assert isinstance(reply["data"], str)
    await send(ws, "mode", ["ltp", [INFY]])
    assert (await next_ticks(ws))[0]["instrument_token"] == INFY


async def test_order_updates_arrive_as_postback_text(sim: Simulator, ws: ClientConnection) -> None:
    """A fill is pushed as {"type":"order"} with the postback fields and a valid checksum."""
    sim.broker.place(
        "regular",
        {
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "transaction_type": "BUY",
            "order_type": "LIMIT",
            "quantity": "1",
            "product": "CNC",
            "price": "1500",
        },
    )
    sim.push_price(INFY, "1499")
    message = await next_text(ws)
    assert message["type"] == "order"
    data = message["data"]
    assert_same_shape(data, fixture_json("postback.json"), extra_keys_ok=True)
    assert data["status"] == "COMPLETE"
    assert data["unfilled_quantity"] == 0
    assert data["checksum"] == checksum(data["order_id"], data["order_timestamp"], sim.api_secret)


async def test_drop_cuts_the_connection_without_a_close_frame(
    sim: Simulator, ws: ClientConnection
) -> None:
    """A drop aborts TCP: the client sees an abnormal closure (1006)."""
    await send(ws, "mode", ["ltp", [INFY]])
    await next_ticks(ws)
    assert sim.ticker.drop_all() == 1
    with pytest.raises(ConnectionClosedError) as caught:
        await next_ticks(ws)
    assert caught.value.rcvd is None


async def test_stall_silences_frames_and_heartbeats_until_resumed(
    sim: Simulator, ws: ClientConnection
) -> None:
    """A stalled connection stays open but sends nothing, heartbeats included."""
    await send(ws, "mode", ["ltp", [INFY]])
    await next_ticks(ws)
    sim.ticker.stall()
    sim.push_price(INFY, "1600")
    with pytest.raises(TimeoutError):
        await within(ws.recv(), 0.5)  # 10 heartbeat intervals of silence
    sim.ticker.resume()
    assert await within(ws.recv(), 10)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_frames_are_sent_as_configured(
    sim: Simulator, ws: ClientConnection, kind: str
) -> None:
    """Each malformed kind arrives byte for byte; the connection carries on afterwards."""
    await send(ws, "mode", ["ltp", [INFY]])
    await next_ticks(ws)
    sim.ticker.send_malformed(kind)
    while (message := await within(ws.recv(), 10)) == b"\x00":
        pass
    assert message == MALFORMED[kind]
    sim.push_price(INFY, "1600")
    assert (await next_ticks(ws))[0]["last_price"] == 1600.0


async def test_ws_reject_fails_the_upgrade_with_the_configured_status(sim: Simulator) -> None:
    """A ws_reject rule fails the handshake (503 by default), then connections work again."""
    sim.faults.add(kind="ws_reject", times=1)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url(sim)):
            pass
    assert caught.value.response.status_code == 503
    async with connect(url(sim)) as ws:
        assert await within(ws.recv(), 10)


async def test_session_expiry_cuts_the_ticker_and_refuses_reconnects(
    sim: Simulator, ws: ClientConnection
) -> None:
    """Expiry drops live connections; reconnecting with the old token gets 403."""
    await send(ws, "mode", ["ltp", [INFY]])
    await next_ticks(ws)
    sim.expire_session()
    with pytest.raises(ConnectionClosedError):
        await next_ticks(ws)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url(sim)):
            pass
    assert caught.value.response.status_code == 403


async def frames_until_drop(seed: int) -> int:
    """Push one tick at a time until a 20% ws_drop rule cuts the link; count frames."""
    async with Simulator(seed=seed, heartbeat_interval=5) as sim:
        sim.faults.add(kind="ws_drop", rate=0.2)
        async with connect(url(sim)) as ws:
            await send(ws, "mode", ["ltp", [INFY]])
            received = 0
            try:
                await next_ticks(ws)
                received += 1
                for n in range(200):
                    sim.push_price(INFY, 1500 + n)
                    await next_ticks(ws)
                    received += 1
            except ConnectionClosedError:
                return received
    raise AssertionError("a 20% drop rate never dropped in 200 frames")


async def test_frame_faults_are_reproducible_for_a_seed() -> None:
    """A rate-based ws_drop cuts the link at the same frame for the same seed."""
    print("seeds 3, 4 and 5")
    first, again = await frames_until_drop(3), await frames_until_drop(3)
    others = {await frames_until_drop(4), await frames_until_drop(5)}
    assert first == again
    assert others | {first} != {first}, "the seed should change where the drop falls"


@pytest.mark.parametrize(
    ("kind", "extra"), [("ws_stall", {"delay": 30}), ("ws_malformed", {"malformed": "truncated"})]
)
async def test_frame_rules_stall_or_corrupt_the_next_frame(
    sim: Simulator, ws: ClientConnection, kind: str, extra: dict[str, Any]
) -> None:
    """ws_stall and ws_malformed rules replace the next data frame as configured."""
    await send(ws, "mode", ["ltp", [INFY]])
    await next_ticks(ws)
    sim.faults.add(kind=kind, times=1, **extra)
    sim.push_price(INFY, "1600")
    if kind == "ws_stall":
        with pytest.raises(TimeoutError):
            await within(ws.recv(), 0.5)
        sim.ticker.resume()
    else:
        while (message := await within(ws.recv(), 10)) == b"\x00":
            pass
        assert message == MALFORMED["truncated"]
    sim.push_price(INFY, "1601")
    assert (await next_ticks(ws))[0]["last_price"] == 1601.0
    assert sim.counters[f"fault_{kind}"] == 1
