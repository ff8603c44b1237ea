"""The Upstox portfolio stream: its messages read without raising, and the client against
the simulator (order updates as orders move, reconnects with a fresh URL, token expiry)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hmt.core.broker import OrderReport
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import instrument_id
from hmt.upstox.portfolio import Kind, StreamState, UpstoxPortfolio, parse_message
from tests.support.eventually import eventually

RELIANCE = "NSE_EQ|INE002A01018"

# Upstox's documented order update (DOC webhook, the stream's payload; FACTS 5.2).
DOCUMENTED: dict[str, Any] = {
    "update_type": "order",
    "user_id": "******",
    "userId": "******",
    "exchange": "NSE",
    "instrument_token": "NSE_EQ|INE848E01016",
    "instrument_key": "NSE_EQ|INE848E01016",
    "trading_symbol": "NHPC-EQ",
    "tradingsymbol": "NHPC-EQ",
    "product": "D",
    "order_type": "MARKET",
    "average_price": 0,
    "price": 0,
    "trigger_price": 0,
    "quantity": 1,
    "disclosed_quantity": 0,
    "pending_quantity": 1,
    "transaction_type": "BUY",
    "order_ref_id": "57744821658411",
    "exchange_order_id": "",
    "parent_order_id": None,
    "validity": "DAY",
    "status": "put order req received",
    "is_amo": False,
    "variety": "SIMPLE",
    "tag": None,
    "exchange_timestamp": None,
    "status_message": "",
    "order_id": "240221025997024",
    "order_request_id": "1",
    "order_timestamp": "2024-02-21 14:40:02",
    "filled_quantity": 0,
    "guid": None,
    "placed_by": "******",
    "status_message_raw": None,
}


def test_the_documented_update_reads_as_an_order_report() -> None:
    message = parse_message(json.dumps(DOCUMENTED))
    assert message.kind is Kind.ORDER
    assert message.report == OrderReport(
        order_id="240221025997024",
        status="PUT ORDER REQ RECEIVED",
        tag=None,
        status_message="",
        filled_quantity=0,
        instrument_token=instrument_id("NSE_EQ|INE848E01016"),
    )


def test_a_complete_tagged_update_carries_its_tag_and_fill_even_as_bytes() -> None:
    update = DOCUMENTED | {
        "status": "complete",
        "tag": "HMTABCDEFGHIJKLMNOP1",
        "filled_quantity": 1,
        "pending_quantity": 0,
        "average_price": 16.78,
    }
    del update["instrument_token"]  # the deprecated twin gone: the key is read
    message = parse_message(json.dumps(update).encode())
    assert message.report is not None
    assert (message.report.status, message.report.filled_quantity) == ("COMPLETE", 1)
    assert message.report.tags == ("HMTABCDEFGHIJKLMNOP1",)
    assert message.report.instrument_token == instrument_id("NSE_EQ|INE848E01016")


@pytest.mark.parametrize(
    ("data", "kind", "why"),
    [
        ("{not json", Kind.BAD, "not json"),
        (b"\xff\xfe\x00", Kind.BAD, "not json"),
        ("[1, 2]", Kind.BAD, "not an object"),
        ('"order"', Kind.BAD, "not an object"),
        (json.dumps({"update_type": "order", "status": "open"}), Kind.BAD, "no order id"),
        (json.dumps({"update_type": "order", "order_id": 7}), Kind.BAD, "no order id"),
        (json.dumps({"update_type": "order", "order_id": "1"}), Kind.BAD, "no status"),
        (json.dumps({"update_type": "position", "quantity": 3}), Kind.OTHER, "position"),
        (json.dumps({"update_type": "gtt_order", "rules": []}), Kind.OTHER, "gtt_order"),
    ],
)
def test_other_messages_are_said_and_never_raise(data: str | bytes, kind: Kind, why: str) -> None:
    message = parse_message(data)
    assert (message.kind, message.why, message.report) == (kind, why, None)


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=5) as running:
        yield running


def stream_for(sim: UpstoxSim, seen: list[OrderReport]) -> UpstoxPortfolio:
    return UpstoxPortfolio(
        sim.access_token,
        on_order=seen.append,
        api_url=sim.api_url,
        reconnect_delay_s=0.05,
        reconnect_max_delay_s=0.2,
        rng=random.Random(1),
    )


async def place(sim: UpstoxSim, **fields: Any) -> str:
    body = {
        "quantity": 1,
        "product": "I",
        "validity": "DAY",
        "price": 0,
        "tag": "HMTAAAAAAAAAAAAAAAA1",
        "instrument_token": RELIANCE,
        "order_type": "MARKET",
        "transaction_type": "BUY",
        "disclosed_quantity": 0,
        "trigger_price": 0,
        "is_amo": False,
        "slice": False,
        **fields,
    }
    headers = {"Authorization": f"Bearer {sim.access_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.api_url}/v3/order/place", json=body, headers=headers) as answer,
    ):
        assert answer.status == 200, await answer.text()
        order_id: str = (await answer.json())["data"]["order_ids"][0]
        return order_id


async def cancel(sim: UpstoxSim, order_id: str) -> None:
    headers = {"Authorization": f"Bearer {sim.access_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.delete(
            f"{sim.api_url}/v3/order/cancel", params={"order_id": order_id}, headers=headers
        ) as answer,
    ):
        assert answer.status == 200, await answer.text()


async def test_each_status_change_of_an_order_arrives_in_order(sim: UpstoxSim) -> None:
    seen: list[OrderReport] = []
    stream = stream_for(sim, seen)
    await stream.start()
    try:
        await eventually(lambda: stream.connected)
        filled = await place(sim)
        await eventually(lambda: any(r.status == "COMPLETE" for r in seen))
        assert [r.status for r in seen] == [
            "PUT ORDER REQ RECEIVED",
            "VALIDATION PENDING",
            "OPEN PENDING",
            "COMPLETE",
        ]
        done = seen[-1]
        assert (done.order_id, done.tag, done.filled_quantity) == (
            filled,
            "HMTAAAAAAAAAAAAAAAA1",
            1,
        )
        assert done.instrument_token == instrument_id(RELIANCE)
        resting = await place(sim, order_type="LIMIT", price=2000.05, tag="T2")
        await cancel(sim, resting)
        await eventually(lambda: seen[-1].status == "CANCELLED")
        assert {r.order_id for r in seen[4:]} == {resting}
        assert "OPEN" in [r.status for r in seen[4:]]
        assert stream.stats.orders == len(seen) == sim.stream_updates
        assert stream.stats.bad_messages == {}
    finally:
        await stream.stop()
    assert stream.stats.state is StreamState.STOPPED


async def test_a_dropped_stream_reconnects_with_a_fresh_url(sim: UpstoxSim) -> None:
    seen: list[OrderReport] = []
    states: list[StreamState] = []
    stream = UpstoxPortfolio(
        sim.access_token,
        on_order=seen.append,
        api_url=sim.api_url,
        on_state=states.append,
        reconnect_delay_s=0.05,
        reconnect_max_delay_s=0.2,
    )
    await stream.start()
    try:
        await eventually(lambda: stream.connected)
        sim.drop_portfolio()
        await eventually(lambda: stream.stats.connects == 2 and stream.connected)
        # Each connection was authorized on its own: the first URL was single use.
        assert sim.counters["/v2/feed/portfolio-stream-feed/authorize"] == 2
        assert states[:4] == [
            StreamState.CONNECTING,
            StreamState.CONNECTED,
            StreamState.RECONNECTING,
            StreamState.CONNECTED,
        ]
        await place(sim)
        await eventually(lambda: any(r.status == "COMPLETE" for r in seen))
    finally:
        await stream.stop()


async def test_an_expired_token_waits_for_a_new_one(sim: UpstoxSim) -> None:
    seen: list[OrderReport] = []
    stream = stream_for(sim, seen)
    await stream.start()
    try:
        await eventually(lambda: stream.connected)
        fresh = await sim.expire_session()  # the stream is closed and the token refused
        await eventually(lambda: stream.stats.state is StreamState.TOKEN_INVALID)
        assert stream.stats.connects == 1
        stream.set_access_token(fresh)
        await eventually(lambda: stream.connected)
        await place(sim)
        await eventually(lambda: any(r.status == "COMPLETE" for r in seen))
    finally:
        await stream.stop()


async def test_a_bad_message_is_counted_and_the_stream_goes_on(sim: UpstoxSim) -> None:
    seen: list[OrderReport] = []
    stream = stream_for(sim, seen)
    stream.on_message("{cut in ha")
    stream.on_message(json.dumps({"update_type": "holding"}))
    stream.on_message(json.dumps(DOCUMENTED))
    assert stream.stats.bad_messages == {"not json": 1}
    assert (stream.stats.other, stream.stats.orders, stream.stats.messages) == (1, 1, 3)
    assert [r.order_id for r in seen] == ["240221025997024"]


async def test_a_failing_listener_does_not_end_the_stream(sim: UpstoxSim) -> None:
    calls: list[OrderReport] = []

    def broken(report: OrderReport) -> None:
        calls.append(report)
        raise RuntimeError("listener bug")

    stream = UpstoxPortfolio(sim.access_token, on_order=broken, api_url=sim.api_url)
    await stream.start()
    try:
        await eventually(lambda: stream.connected)
        await place(sim)
        await eventually(lambda: any(r.status == "COMPLETE" for r in calls))
        assert stream.connected
        assert stream.stats.connects == 1
    finally:
        await stream.stop()


async def test_the_simulator_refuses_a_used_url_and_a_bad_token(sim: UpstoxSim) -> None:
    headers = {"Authorization": f"Bearer {sim.access_token}"}
    url = f"{sim.api_url}/v2/feed/portfolio-stream-feed/authorize"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers, params={"update_types": "order"}) as answer:
            uri = (await answer.json())["data"]["authorized_redirect_uri"]
        assert uri.startswith(sim.portfolio_url)
        async with http.ws_connect(uri):
            pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as used:
            await http.ws_connect(uri)
        assert used.value.status == 403
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as refused:
            assert refused.status == 401
            assert (await refused.json())["errors"][0]["errorCode"] == "UDAPI100050"
        async with http.get(url, headers=headers, params={"update_types": "trades"}) as bad:
            assert bad.status == 400
