"""The Upstox order port against the simulator: placing, finding by tag, and every fault's kind."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.model import OrderIntent
from hmt.core.types import Exchange, Leg, OrderType, Product, Side, TriggerId
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import Master, build_master, instrument_id
from hmt.upstox.orders import UpstoxOrders
from hmt.upstox.rest import UpstoxRest, classify, parse_response
from hmt.upstox.tags import broker_tag

RELIANCE = "NSE_EQ|INE002A01018"


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=3) as running:
        yield running


@pytest.fixture
def master(sim: UpstoxSim) -> Master:
    return build_master(sim.instruments.values())


@pytest.fixture
async def port(sim: UpstoxSim, master: Master) -> AsyncIterator[UpstoxOrders]:
    rest = UpstoxRest(access_token=sim.access_token, api_url=sim.api_url, timeout=1.0)
    yield UpstoxOrders(rest, master.key_for)
    await rest.aclose()


def intent(
    trigger: str, kind: OrderType = OrderType.MARKET, limit: int | None = None
) -> OrderIntent:
    return OrderIntent(
        trigger_id=TriggerId(trigger),
        leg=Leg.FIRST,
        tag=broker_tag(trigger, Leg.FIRST),
        instrument_token=instrument_id(RELIANCE),
        exchange=Exchange.NSE,
        tradingsymbol="RELIANCE",
        side=Side.BUY,
        quantity=2,
        product=Product.MIS,
        order_type=kind,
        limit_price=limit,
        price_divisor=100,
    )


async def test_a_market_order_is_placed_protected_and_found_by_its_tag(
    port: UpstoxOrders, sim: UpstoxSim
) -> None:
    order = intent("t-market")
    body = port.order_body(order)
    assert body["market_protection"] == -1
    assert body["instrument_token"] == RELIANCE
    assert body["product"] == "I"
    order_id = await port.place(order)
    [found] = await port.find(order.tag)
    assert found.order_id == order_id
    assert found.status == "COMPLETE"
    assert found.filled_quantity == 2
    assert found.instrument_token == instrument_id(RELIANCE)
    assert sim.orders[order_id].tag == order.tag


async def test_a_resting_limit_is_open_then_cancelled(port: UpstoxOrders) -> None:
    order = intent("t-limit", OrderType.LIMIT, limit=200_005)  # 2000.05, below the 2500 ltp
    assert port.order_body(order)["price"] == 2000.05
    order_id = await port.place(order)
    assert [r.status for r in await port.find(order.tag)] == ["OPEN"]
    assert await port.cancel(order_id) == order_id
    assert [r.status for r in await port.find(order.tag)] == ["CANCELLED"]
    states = [r.status for r in await port.history(order_id)]
    assert states[0] == "PUT ORDER REQ RECEIVED"
    assert states[-1] == "CANCELLED"


async def test_a_stop_rests_as_trigger_pending(port: UpstoxOrders) -> None:
    order = intent("t-stop")
    await port.place_stop(order, trigger_price=240_000)
    [found] = await port.find(order.tag)
    assert found.status == "TRIGGER PENDING"


async def test_orders_lists_only_orders_with_our_tags(port: UpstoxOrders) -> None:
    await port.place(intent("t-ours"))
    hand = port.order_body(intent("t-hand"))
    hand["tag"] = "by hand"
    await port.place_body(hand)
    assert [r.tag for r in await port.orders()] == [broker_tag("t-ours", Leg.FIRST)]


async def test_an_off_tick_price_is_final_and_names_the_field(port: UpstoxOrders) -> None:
    with pytest.raises(BrokerError) as refused:
        await port.place(intent("t-off", OrderType.LIMIT, limit=200_003))
    assert refused.value.kind is ErrorKind.FINAL
    assert "tick" in refused.value.message
    assert refused.value.error_type == "UDAPI100038"


async def test_an_instrument_missing_from_the_master_is_final_and_nothing_is_sent(
    port: UpstoxOrders, sim: UpstoxSim
) -> None:
    order = dataclasses.replace(intent("t-unknown"), instrument_token=instrument_id("NSE_EQ|NONE"))
    with pytest.raises(BrokerError) as refused:
        await port.place(order)
    assert refused.value.kind is ErrorKind.FINAL
    assert "not in today's Upstox master" in refused.value.message
    assert sim.orders == {}


async def test_a_bad_token_is_auth(sim: UpstoxSim, master: Master) -> None:
    rest = UpstoxRest(access_token="wrong", api_url=sim.api_url)
    try:
        with pytest.raises(BrokerError) as refused:
            await UpstoxOrders(rest, master.key_for).orders()
    finally:
        await rest.aclose()
    assert refused.value.kind is ErrorKind.AUTH
    assert refused.value.http_status == 401


@pytest.mark.parametrize(
    ("kind", "exists"),
    [
        ("error", False),
        ("close", False),
        ("accept_then_error", True),
        ("accept_then_close", True),
        ("never_answer", True),
    ],
)
async def test_each_fault_is_ambiguous_and_the_tag_says_whether_it_exists(
    port: UpstoxOrders, sim: UpstoxSim, kind: str, exists: bool
) -> None:
    sim.faults.add(kind=kind, endpoint="place_order", times=1)
    order = intent(f"t-{kind}")
    with pytest.raises(BrokerError) as failed:
        await port.place(order)
    assert failed.value.kind is ErrorKind.AMBIGUOUS
    assert len(await port.find(order.tag)) == int(exists)


async def test_latency_below_the_timeout_still_places(port: UpstoxOrders, sim: UpstoxSim) -> None:
    sim.faults.add(kind="latency", endpoint="place_order", delay=0.2, times=1)
    order = intent("t-slow")
    order_id = await port.place(order)
    assert [r.order_id for r in await port.find(order.tag)] == [order_id]


async def test_an_answer_later_than_the_timeout_is_ambiguous_and_the_order_exists(
    port: UpstoxOrders, sim: UpstoxSim
) -> None:
    sim.faults.add(kind="accept_then_delay", endpoint="place_order", delay=3.0, times=1)
    order = intent("t-late")
    with pytest.raises(BrokerError) as late:
        await port.place(order)
    assert late.value.kind is ErrorKind.AMBIGUOUS
    assert len(await port.find(order.tag)) == 1


async def test_a_token_fault_is_auth_and_a_book_fault_is_ambiguous(
    port: UpstoxOrders, sim: UpstoxSim
) -> None:
    sim.faults.add(kind="error", endpoint="place_order", error_type="TokenException", times=1)
    with pytest.raises(BrokerError) as token:
        await port.place(intent("t-token"))
    assert (token.value.kind, token.value.error_type) == (ErrorKind.AUTH, "UDAPI100050")
    sim.faults.add(kind="error", endpoint="orders", times=1)
    with pytest.raises(BrokerError) as book:
        await port.orders()
    assert (book.value.kind, book.value.http_status) == (ErrorKind.AMBIGUOUS, 503)


async def test_the_rate_limit_is_retry(port: UpstoxOrders, sim: UpstoxSim) -> None:
    sim.order_windows = ((60.0, 2),)
    await port.place(intent("t-r1"))
    await port.place(intent("t-r2"))
    with pytest.raises(BrokerError) as limited:
        await port.place(intent("t-r3"))
    assert limited.value.kind is ErrorKind.RETRY
    assert (limited.value.http_status, limited.value.error_type) == (429, "UDAPI10005")
    assert sim.refused == 1


async def test_no_listener_is_retry(master: Master) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    rest = UpstoxRest(access_token="t", api_url=f"http://127.0.0.1:{closed}")
    try:
        with pytest.raises(BrokerError) as refused:
            await UpstoxOrders(rest, master.key_for).place(intent("t-down"))
    finally:
        await rest.aclose()
    assert refused.value.kind is ErrorKind.RETRY


async def test_order_writes_go_to_the_order_host_and_reads_to_the_api_host(
    sim: UpstoxSim, master: Master
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        elsewhere = probe.getsockname()[1]
    rest = UpstoxRest(
        access_token=sim.access_token,
        api_url=sim.api_url,
        order_url=f"http://127.0.0.1:{elsewhere}",
    )
    port = UpstoxOrders(rest, master.key_for)
    try:
        assert await port.orders() == []  # the book is read from the API host
        with pytest.raises(BrokerError) as unreachable:
            await port.place(intent("t-hft"))  # the order host is not listening
    finally:
        await rest.aclose()
    assert unreachable.value.kind is ErrorKind.RETRY
    assert sim.orders == {}


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, None, ErrorKind.RETRY),
        (400, "UDAPI10005", ErrorKind.RETRY),
        (401, None, ErrorKind.AUTH),
        (400, "UDAPI100050", ErrorKind.AUTH),
        (403, "UDAPI100067", ErrorKind.AUTH),
        (500, None, ErrorKind.AMBIGUOUS),
        (503, "UDAPI100500", ErrorKind.AMBIGUOUS),
        (400, "UDAPI100500", ErrorKind.AMBIGUOUS),
        (200, None, ErrorKind.AMBIGUOUS),
        (400, "UDAPI100038", ErrorKind.FINAL),
        (404, None, ErrorKind.FINAL),
    ],
)
def test_classification(status: int, code: str | None, kind: ErrorKind) -> None:
    assert classify(status, code) is kind


def test_envelopes() -> None:
    body = b'{"status":"error","errors":[{"error_code":"UDAPI1056","message":"bad type"}]}'
    with pytest.raises(BrokerError) as snake:
        parse_response(400, body, {})
    assert (snake.value.error_type, snake.value.message) == ("UDAPI1056", "bad type")
    with pytest.raises(BrokerError) as garbled:
        parse_response(502, b"<html>", {"retry-after": "2"})
    assert garbled.value.kind is ErrorKind.AMBIGUOUS
    with pytest.raises(BrokerError) as limited:
        parse_response(429, b'{"status":"error","errors":[]}', {"retry-after": "2"})
    assert limited.value.retry_after == 2.0
    assert parse_response(200, b'{"status":"success","data":[1]}', {}) == [1]
