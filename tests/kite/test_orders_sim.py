"""The Kite order client over real loopback sockets against the simulator, fault by fault.

Each fault mode must surface as the error kind that makes the executor do the
safe thing (FACTS.md 2.3): resend, look the tag up first, or stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.rules import order_for
from hmt.core.types import Leg, OrderType, Side
from hmt.kite.orders import KiteOrders
from hmt.kite.rest import KiteRest, client_names
from hmt.kite.tags import broker_tag
from hmt.sim.httpd import HttpServer, Request, Response
from hmt.sim.simulator import Simulator
from tests.support.factories import INFY, make_trigger


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=3) as running:
        running.push_price(INFY, "1600.00")
        yield running


@pytest.fixture(params=client_names())
def client(request: pytest.FixtureRequest) -> str:
    """Every HTTP library KiteRest runs on (HMT_KITE_HTTP) passes the same tests."""
    name: str = request.param
    return name


@pytest.fixture
async def kite(sim: Simulator, client: str) -> AsyncIterator[KiteOrders]:
    rest = KiteRest(
        api_url=sim.api_url,
        api_key=sim.api_key,
        access_token=sim.access_token,
        timeout=1.0,
        client=client,
    )
    assert rest.client == client
    yield KiteOrders(rest)
    await rest.aclose()


def intent(**overrides: object):  # type: ignore[no-untyped-def]
    trigger = make_trigger(**overrides)
    return order_for(trigger, Leg.FIRST, broker_tag(trigger.id, Leg.FIRST))


async def test_market_order_is_placed_and_found_by_tag(sim: Simulator, kite: KiteOrders) -> None:
    """A MARKET order goes out with protection, fills, and is found again by its tag."""
    order = intent(quantity=3)
    order_id = await kite.place(order)
    assert len(order_id) == 19
    found = await kite.find(order.tag)
    assert [r.order_id for r in found] == [order_id]
    assert found[0].status == "COMPLETE"
    assert "mktp" in found[0].tags, "Kite books protected MARKET orders as tagged LIMITs"
    assert await kite.find(intent().tag) == []


async def test_limit_order_price_goes_out_in_rupees(sim: Simulator, kite: KiteOrders) -> None:
    """A LIMIT leg's wire-unit price reaches the broker as the exact rupee price."""
    order = intent(order_type=OrderType.LIMIT, limit_price_1=159_910)
    order_id = await kite.place(order)
    (row,) = [o for o in sim.orders() if o["order_id"] == order_id]
    assert row["price"] == 1599.1
    assert row["status"] == "OPEN", row["status_message"]


@pytest.mark.parametrize(
    ("fault", "kind", "order_exists"),
    [
        ({"kind": "error", "error_type": "NetworkException"}, ErrorKind.AMBIGUOUS, False),
        ({"kind": "error", "error_type": "InputException"}, ErrorKind.FINAL, False),
        ({"kind": "error", "error_type": "TokenException"}, ErrorKind.AUTH, False),
        (
            {"kind": "error", "error_type": "NetworkException", "status": 429},
            ErrorKind.RETRY,
            False,
        ),
        (
            {"kind": "accept_then_error", "error_type": "GeneralException"},
            ErrorKind.AMBIGUOUS,
            True,
        ),
        ({"kind": "accept_then_close"}, ErrorKind.AMBIGUOUS, True),
        ({"kind": "accept_then_delay", "delay": 3.0}, ErrorKind.AMBIGUOUS, True),
        ({"kind": "never_answer"}, ErrorKind.AMBIGUOUS, True),
        ({"kind": "close"}, ErrorKind.AMBIGUOUS, False),
    ],
)
async def test_each_fault_gets_the_safe_kind(
    sim: Simulator, kite: KiteOrders, fault: dict[str, object], kind: ErrorKind, order_exists: bool
) -> None:
    """Each injected fault is classified so that a retry cannot duplicate the order."""
    sim.faults.add(endpoint="place_order", times=1, **fault)
    order = intent()
    with pytest.raises(BrokerError) as info:
        await kite.place(order)
    assert info.value.kind is kind
    assert len(await kite.find(order.tag)) == int(order_exists)


async def test_connection_refused_is_safe_to_resend(sim: Simulator, client: str) -> None:
    """Nothing listening: the request never left, so the kind is a plain retry."""
    rest = KiteRest(
        api_url="http://127.0.0.1:9", api_key="k", access_token="t", timeout=1.0, client=client
    )
    with pytest.raises(BrokerError) as info:
        await KiteOrders(rest).place(intent())
    await rest.aclose()
    assert info.value.kind is ErrorKind.RETRY


async def test_expired_session_is_auth(sim: Simulator, kite: KiteOrders) -> None:
    """After the session expires every call is an auth error, and a new token works."""
    sim.expire_session()
    with pytest.raises(BrokerError) as info:
        await kite.place(intent())
    assert info.value.kind is ErrorKind.AUTH
    assert info.value.error_type == "TokenException"


async def test_after_send_is_hit_by_orders_not_by_reading_the_book(
    sim: Simulator, kite: KiteOrders, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On either client `after_send` is hit by a POST (an order), never by GET /orders."""
    hits: list[str] = []
    monkeypatch.setattr("hmt.kite.rest.failpoint", hits.append)
    await kite.orders()
    assert hits == []
    await kite.place(intent())
    assert hits == ["after_send"]


async def test_stop_orders_amo_and_history(sim: Simulator, kite: KiteOrders) -> None:
    """SL-M and SL orders rest as TRIGGER PENDING; history reads back; AMO uses its path."""
    sell = intent(side=Side.SELL)
    slm_id = await kite.place_stop(sell, trigger_price=158_000)
    sl = intent(side=Side.SELL, order_type=OrderType.LIMIT, limit_price_1=157_900)
    sl_id = await kite.place_stop(sl, trigger_price=158_000)
    rows = {o["order_id"]: o for o in sim.orders()}
    assert (rows[slm_id]["order_type"], rows[slm_id]["status"]) == ("SL-M", "TRIGGER PENDING")
    assert (rows[sl_id]["order_type"], rows[sl_id]["trigger_price"]) == ("SL", 1580.0)
    history = await kite.history(slm_id)
    assert history[-1].status == "TRIGGER PENDING"
    assert len(history) > 1
    paths: list[str] = []
    sim.on_request = lambda request: paths.append(request.path)
    # The simulator models the regular variety only; it must see the AMO path and refuse.
    with pytest.raises(BrokerError) as refused:
        await kite.place(intent(), variety="amo")
    assert "/orders/amo" in paths
    assert refused.value.kind is ErrorKind.FINAL
    assert "'amo'" in refused.value.message
    with pytest.raises(ValueError, match="variety"):
        await kite.place(intent(), variety="iceberg")


async def test_a_new_token_is_used_by_the_next_request(sim: Simulator, kite: KiteOrders) -> None:
    """After the session is renewed, `set_access_token` makes the same client work again."""
    sim.expire_session()
    with pytest.raises(BrokerError):
        await kite.place(intent())
    kite._rest.set_access_token(sim.renew_session())
    assert await kite.place(intent())


async def test_the_instrument_dump_comes_back_as_text(sim: Simulator, kite: KiteOrders) -> None:
    """`csv` returns the dump without Kite's envelope; a 404 is a classified error."""
    text = await kite._rest.csv("/instruments/NSE")
    assert text.splitlines()[0].startswith("instrument_token,")
    assert "INFY" in text
    with pytest.raises(BrokerError) as info:
        await kite._rest.csv("/no/such/dump")
    assert info.value.http_status == 404


async def test_an_api_url_with_a_path_keeps_it(client: str) -> None:
    """A base URL with a path (a gateway in front of Kite) prefixes every request's path."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def handle(request: Request) -> Response:
        seen.append((request.path, request.form()))
        return Response.json(200, {"status": "success", "data": {"order_id": "1"}})

    server = HttpServer(handle)
    port = await server.start("127.0.0.1", 0)
    rest = KiteRest(
        api_url=f"http://127.0.0.1:{port}/kite/", api_key="k", access_token="t", client=client
    )
    try:
        data = await rest.request("POST", "/orders/regular", form={"tag": "x"})
    finally:
        await rest.aclose()
        await server.close()
    assert data == {"order_id": "1"}
    assert seen == [("/kite/orders/regular", {"tag": "x"})]
