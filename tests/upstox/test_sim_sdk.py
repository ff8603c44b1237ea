"""The official Upstox SDK against `hmt sim --broker upstox`: its REST client, protobufs and
portfolio streamer."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import upstox_client
from upstox_client.feeder.portfolio_data_feeder import PortfolioDataFeeder
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as pb
from upstox_client.rest import ApiException

from hmt.sim.upstox.server import UpstoxSim
from tests.support.eventually import eventually


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=7) as running:
        yield running


def sdk(sim: UpstoxSim, token: str | None = None) -> upstox_client.ApiClient:
    config = upstox_client.Configuration()
    config.host = sim.api_url
    config.order_host = sim.api_url  # order writes go to api-hft on the real service
    config.access_token = token if token is not None else sim.access_token
    return upstox_client.ApiClient(config)


async def login_code(sim: UpstoxSim) -> str:
    params = {
        "client_id": sim.client_id,
        "redirect_uri": sim.redirect_uri,
        "response_type": "code",
        "state": "s1",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{sim.api_url}/v2/login/authorization/dialog", params=params, allow_redirects=False
        ) as answer,
    ):
        assert answer.status == 302
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


async def test_the_sdk_exchanges_a_login_code_once(sim: UpstoxSim) -> None:
    code = await login_code(sim)
    login = upstox_client.LoginApi(sdk(sim, token=""))

    def exchange() -> object:
        return login.token(
            api_version="2.0",
            code=code,
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            redirect_uri=sim.redirect_uri,
            grant_type="authorization_code",
        )

    answer = await asyncio.to_thread(exchange)
    assert answer.access_token == sim.access_token
    assert answer.broker == "UPSTOX"
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(exchange)  # the code is single use
    assert refused.value.status == 401
    assert json.loads(refused.value.body)["errors"][0]["errorCode"] == "UDAPI100016"


async def test_the_sdk_places_reads_and_cancels_orders(sim: UpstoxSim) -> None:
    client = sdk(sim)
    v3 = upstox_client.OrderApiV3(client)
    v2 = upstox_client.OrderApi(client)

    def place(**fields: object) -> list[str]:
        body = upstox_client.PlaceOrderV3Request(
            quantity=fields.get("quantity", 1),
            product="I",
            validity="DAY",
            price=fields.get("price", 0),
            tag=fields.get("tag"),
            instrument_token=fields.get("key", "NSE_EQ|INE002A01018"),
            order_type=fields.get("order_type", "MARKET"),
            transaction_type="BUY",
            disclosed_quantity=0,
            trigger_price=0,
            is_amo=False,
            slice=False,
            market_protection=-1,
        )
        return v3.place_order(body).data.order_ids

    filled = await asyncio.to_thread(place, tag="HMTAAAAAAAAAAAAAAAA1")
    resting = await asyncio.to_thread(place, order_type="LIMIT", price=2000.05, tag="T2")
    assert len(filled) == 1
    assert len(resting) == 1

    book = await asyncio.to_thread(v2.get_order_book, "2.0")
    statuses = {row.order_id: (row.status, row.tag) for row in book.data}
    assert statuses == {
        filled[0]: ("complete", "HMTAAAAAAAAAAAAAAAA1"),
        resting[0]: ("open", "T2"),
    }
    status = await asyncio.to_thread(v2.get_order_status, order_id=resting[0])
    assert status.data.price == 2000.05
    by_tag = await asyncio.to_thread(v2.get_order_details, "2.0", tag="HMTAAAAAAAAAAAAAAAA1")
    assert {row.order_id for row in by_tag.data} == {filled[0]}
    assert by_tag.data[-1].status == "complete"

    cancelled = await asyncio.to_thread(v3.cancel_order, resting[0])
    assert cancelled.data.order_id == resting[0]
    with pytest.raises(ApiException) as again:
        await asyncio.to_thread(v3.cancel_order, resting[0])
    assert again.value.status == 400
    with pytest.raises(ApiException) as off_tick:
        await asyncio.to_thread(place, order_type="LIMIT", price=2000.03)
    problem = json.loads(off_tick.value.body)["errors"][0]
    assert problem["propertyPath"] == "price"
    assert "tick" in problem["message"]


async def test_a_bad_token_is_udapi100050_for_the_sdk(sim: UpstoxSim) -> None:
    v2 = upstox_client.OrderApi(sdk(sim, token="wrong"))
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(v2.get_order_book, "2.0")
    assert refused.value.status == 401
    assert json.loads(refused.value.body)["errors"][0]["errorCode"] == "UDAPI100050"


async def test_the_sdk_authorizes_the_feed_and_its_classes_decode_our_frames(
    sim: UpstoxSim,
) -> None:
    feed = upstox_client.WebsocketApi(sdk(sim))
    answer = await asyncio.to_thread(feed.get_market_data_feed_authorize_v3)
    uri = answer.data.authorized_redirect_uri
    assert uri.startswith(sim.feed_url)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(uri) as socket:
            first = pb.FeedResponse.FromString(await socket.receive_bytes(timeout=5))
            assert first.type == pb.market_info
            sub = {
                "guid": "g1",
                "method": "sub",
                "data": {"mode": "full", "instrumentKeys": ["NSE_EQ|INE062A01020"]},
            }
            await socket.send_bytes(json.dumps(sub).encode())
            snapshot = pb.FeedResponse.FromString(await socket.receive_bytes(timeout=5))
            assert snapshot.type == pb.initial_feed
            assert snapshot.feeds["NSE_EQ|INE062A01020"].fullFeed.marketFF.ltpc.ltp == 800.0
            async with http.post(
                f"{sim.api_url}/_sim/price",
                json={"instrument_key": "NSE_EQ|INE062A01020", "ltp": 801.35},
            ) as moved:
                assert moved.status == 200
            live = pb.FeedResponse.FromString(await socket.receive_bytes(timeout=5))
            assert live.type == pb.live_feed
            assert live.feeds["NSE_EQ|INE062A01020"].fullFeed.marketFF.ltpc.ltp == 801.35
        # The authorized URL was single use.
        with pytest.raises(aiohttp.WSServerHandshakeError) as used:
            await http.ws_connect(uri)
        assert used.value.status == 403


async def test_the_sdk_authorizes_the_portfolio_stream_for_its_update_types(
    sim: UpstoxSim,
) -> None:
    stream = upstox_client.WebsocketApi(sdk(sim))
    answer = await asyncio.to_thread(
        stream.get_portfolio_stream_feed_authorize, "2.0", position_update=True
    )
    uri = answer.data.authorized_redirect_uri
    assert uri.startswith(sim.portfolio_url)
    assert parse_qs(urlsplit(uri).query)["update_types"] == ["order,position"]
    async with aiohttp.ClientSession() as http, http.ws_connect(uri) as socket:
        await eventually(lambda: sim.portfolio_streams == 1)
        await asyncio.to_thread(place_market, sim, "HMTPORTFOLIOSDK00001")
        update = json.loads(await socket.receive_str(timeout=5))
        assert update["update_type"] == "order"
        assert update["status"] == "put order req received"
        assert update["tag"] == "HMTPORTFOLIOSDK00001"


def place_market(sim: UpstoxSim, tag: str) -> str:
    body = upstox_client.PlaceOrderV3Request(
        quantity=1,
        product="I",
        validity="DAY",
        price=0,
        tag=tag,
        instrument_token="NSE_EQ|INE002A01018",
        order_type="MARKET",
        transaction_type="BUY",
        disclosed_quantity=0,
        trigger_price=0,
        is_amo=False,
        slice=False,
    )
    order_id: str = upstox_client.OrderApiV3(sdk(sim)).place_order(body).data.order_ids[0]
    return order_id


async def test_the_sdks_portfolio_streamer_hears_an_order_complete(
    sim: UpstoxSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PortfolioDataStreamer as a user runs it: its feeder connects to the stream's address
    with the Bearer header (Upstox's host is written into the SDK: pointed at the
    simulator here, with the SDK's own query), follows the 302 to the authorized
    socket, and hands on each order update as the JSON text Upstox sends."""
    real = PortfolioDataFeeder.get_websocket_url

    def to_sim(feeder: PortfolioDataFeeder) -> str:
        url: str = real(feeder)
        assert url.startswith("wss://api.upstox.com/v2/feed/portfolio-stream-feed?")
        return url.replace("wss://api.upstox.com", sim.api_url.replace("http", "ws", 1))

    monkeypatch.setattr(PortfolioDataFeeder, "get_websocket_url", to_sim)
    messages: list[str] = []
    opened = threading.Event()
    streamer = upstox_client.PortfolioDataStreamer(sdk(sim), order_update=True)
    streamer.on("open", lambda: opened.set())
    streamer.on("message", messages.append)
    streamer.auto_reconnect(False)
    streamer.connect()
    try:
        assert await asyncio.to_thread(opened.wait, 5)
        await eventually(lambda: sim.portfolio_streams == 1)
        order_id = await asyncio.to_thread(place_market, sim, "HMTPORTFOLIOSDK00002")
        await eventually(lambda: any('"complete"' in m for m in messages))
    finally:
        await asyncio.to_thread(streamer.disconnect)  # it waits for the close reply
    updates = [json.loads(m) for m in messages]
    assert [u["status"] for u in updates] == [
        "put order req received",
        "validation pending",
        "open pending",
        "complete",
    ]
    assert {(u["order_id"], u["tag"], u["update_type"]) for u in updates} == {
        (order_id, "HMTPORTFOLIOSDK00002", "order")
    }
    assert updates[-1]["filled_quantity"] == 1
    assert updates[-1]["average_price"] == sim.prices["NSE_EQ|INE002A01018"]
    assert updates[-1]["instrument_key"] == "NSE_EQ|INE002A01018"
    await eventually(lambda: sim.portfolio_streams == 0)
