"""Kite's REST surface over loopback: shapes as in the real fixtures, auth, errors, control."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hmt.sim.session import checksum
from hmt.sim.simulator import Simulator
from tests.sim.support import INFY, assert_same_shape, fixture_json
from tests.support.services import kite_fixture

ORDER = {
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "order_type": "MARKET",
    "quantity": "1",
    "product": "CNC",
    "market_protection": "-1",
    "tag": "hmtA1",
}


@pytest.fixture
async def kite(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-Kite-Version": "3", "Authorization": f"token {sim.api_key}:{sim.access_token}"}
    async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as client:
        yield client


def newest_fixture_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if "account_id" in r and "tags" in r and "terminal_id" not in r)


async def test_order_round_trip_has_the_fixture_shapes(kite: httpx.AsyncClient) -> None:
    """Place, book, history and trades answer with the shapes of the real fixtures."""
    placed = await kite.post("/orders/regular", data=ORDER)
    assert placed.status_code == 200
    assert_same_shape(placed.json(), fixture_json("order_response.json"))
    order_id = placed.json()["data"]["order_id"]

    book = (await kite.get("/orders")).json()
    assert book["status"] == "success"
    [row] = book["data"]
    assert_same_shape(row, newest_fixture_row(fixture_json("orders.json")["data"]))
    assert row["order_id"] == order_id
    assert row["tags"][:2] == ["hmtA1", "mktp"]

    history = (await kite.get(f"/orders/{order_id}")).json()["data"]
    expected = fixture_json("order_info.json")["data"][0]
    for state in history:
        assert_same_shape(state, expected, extra_keys_ok=True)
    assert history[-1]["status"] == "COMPLETE"

    trades = (await kite.get(f"/orders/{order_id}/trades")).json()
    assert_same_shape(trades, fixture_json("order_trades.json"))


async def test_modify_and_cancel_have_the_fixture_shapes(kite: httpx.AsyncClient) -> None:
    """PUT and DELETE on an order answer like order_modify.json and order_cancel.json."""
    limit = {**ORDER, "order_type": "LIMIT", "price": "1400"}
    order_id = (await kite.post("/orders/regular", data=limit)).json()["data"]["order_id"]
    modified = await kite.put(f"/orders/regular/{order_id}", data={"price": "1410"})
    assert_same_shape(modified.json(), fixture_json("order_modify.json"))
    cancelled = await kite.delete(f"/orders/regular/{order_id}")
    assert_same_shape(cancelled.json(), fixture_json("order_cancel.json"))
    assert cancelled.json()["data"]["order_id"] == order_id


@pytest.mark.parametrize(
    ("path", "fixture"),
    [("/quote/ltp", "ltp.json"), ("/quote/ohlc", "ohlc.json"), ("/quote", "quote.json")],
)
async def test_quotes_have_the_fixture_shapes(
    kite: httpx.AsyncClient, path: str, fixture: str
) -> None:
    """ltp, ohlc and full quote answer NSE:INFY exactly as shaped as the fixtures."""
    response = await kite.get(path, params={"i": ["NSE:INFY", "NSE:UNKNOWN"]})
    assert response.status_code == 200
    assert_same_shape(response.json(), fixture_json(fixture))
    assert response.json()["data"]["NSE:INFY"]["instrument_token"] == INFY


async def test_quote_of_an_index(kite: httpx.AsyncClient) -> None:
    """Indices quote too (no depth), keyed as Kite keys them."""
    data = (await kite.get("/quote/ltp", params={"i": "NSE:NIFTY 50"})).json()["data"]
    assert data == {"NSE:NIFTY 50": {"instrument_token": 256265, "last_price": 25000}}


async def test_profile_session_and_logout_have_the_fixture_shapes(
    sim: Simulator, kite: httpx.AsyncClient
) -> None:
    """Profile, the token exchange and logout match their fixtures; logout kills the token."""
    assert_same_shape((await kite.get("/user/profile")).json(), fixture_json("profile.json"))
    request_token = sim.request_token()
    exchanged = await kite.post(
        "/session/token",
        data={
            "api_key": sim.api_key,
            "request_token": request_token,
            "checksum": checksum(sim.api_key, request_token, sim.api_secret),
        },
    )
    assert_same_shape(exchanged.json(), fixture_json("generate_session.json"))
    fresh = exchanged.json()["data"]["access_token"]
    headers = {"Authorization": f"token {sim.api_key}:{fresh}"}
    logout = await kite.delete(
        "/session/token", params={"api_key": sim.api_key, "access_token": fresh}, headers=headers
    )
    assert_same_shape(logout.json(), fixture_json("session_logout.json"))
    assert (await kite.get("/user/profile", headers=headers)).status_code == 403


@pytest.mark.parametrize(
    ("change", "error_type", "message"),
    [
        ({"checksum": "0" * 64}, "TokenException", "Invalid `checksum`."),
        (
            {"request_token": "used-or-made-up"},
            "TokenException",
            "Token is invalid or has expired.",
        ),
        ({"api_key": "other"}, "InputException", "Invalid `api_key`."),
    ],
)
async def test_token_exchange_checks_the_checksum(
    sim: Simulator, kite: httpx.AsyncClient, change: dict[str, str], error_type: str, message: str
) -> None:
    """A wrong checksum, request token or api key is refused with Kite's error."""
    request_token = sim.request_token()
    form = {
        "api_key": sim.api_key,
        "request_token": request_token,
        "checksum": checksum(sim.api_key, request_token, sim.api_secret),
        **change,
    }
    response = await kite.post("/session/token", data=form)
    body = response.json()
    assert response.status_code == (403 if error_type == "TokenException" else 400)
    assert (body["status"], body["error_type"], body["message"]) == ("error", error_type, message)


async def test_login_redirect_delivers_a_request_token(sim: Simulator) -> None:
    """GET /connect/login redirects to the configured URL with a usable request token."""
    sim.rest.redirect_url = "http://127.0.0.1:9/callback"
    async with httpx.AsyncClient(base_url=sim.api_url) as client:
        response = await client.get("/connect/login", params={"api_key": sim.api_key, "v": "3"})
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.params["status"] == "success"
    assert location.params["request_token"] in sim.sessions.request_tokens


async def test_instruments_dump_is_csv_with_kites_header(kite: httpx.AsyncClient) -> None:
    """GET /instruments and /instruments/NSE serve CSV with the fixture's columns."""
    for path in ("/instruments", "/instruments/NSE"):
        response = await kite.get(path)
        assert response.headers["content-type"] == "text/csv"
        header = kite_fixture("instruments_nse.csv").read_text().splitlines()[0]
        assert response.text.splitlines()[0] == header
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert any(r["tradingsymbol"] == "INFY" and r["instrument_token"] == "408065" for r in rows)


@pytest.mark.parametrize(
    "authorization", [None, "token wrong:key", "Bearer abc", "token {api_key}:nottoken"]
)
async def test_missing_or_wrong_credentials_get_403_token_exception(
    sim: Simulator, authorization: str | None
) -> None:
    """Kite answers 403 TokenException to a missing or invalid Authorization header."""
    headers = {"X-Kite-Version": "3"}
    if authorization is not None:
        headers["Authorization"] = authorization.format(api_key=sim.api_key)
    async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as client:
        response = await client.get("/orders")
    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "data": None,
        "error_type": "TokenException",
        "message": "Incorrect `api_key` or `access_token`.",
    }


async def test_routes_methods_and_versions(kite: httpx.AsyncClient) -> None:
    """Unknown paths are 404, wrong methods 405, another API version 400; all enveloped."""
    missing = await kite.get("/portfolio/unknown")
    wrong = await kite.post("/orders")
    version = await kite.get("/orders", headers={"X-Kite-Version": "2"})
    assert [missing.status_code, wrong.status_code, version.status_code] == [404, 405, 400]
    assert all(r.json()["status"] == "error" for r in (missing, wrong, version))


async def test_input_errors_name_the_field(kite: httpx.AsyncClient) -> None:
    """A bad order field is a 400 InputException that names it; the book stays empty."""
    response = await kite.post("/orders/regular", data={**ORDER, "quantity": "lots"})
    assert response.status_code == 400
    assert response.json()["error_type"] == "InputException"
    assert "`quantity`" in response.json()["message"]
    assert (await kite.get("/orders")).json()["data"] == []


async def test_garbage_on_the_socket_gets_400_not_a_crash(
    sim: Simulator, kite: httpx.AsyncClient
) -> None:
    """A request that is not HTTP is answered 400 and the server keeps serving."""
    host, port = sim.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HELLO THERE\r\n\r\n")
    await writer.drain()
    reply = await reader.read()
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400")
    assert (await kite.get("/user/profile")).status_code == 200


async def test_control_api_drives_the_simulator(sim: Simulator, kite: httpx.AsyncClient) -> None:
    """/_sim/ pushes prices, sets faults and funds, lists orders, and resets."""
    pushed = await kite.post("/_sim/price", json={"token": INFY, "price": "1600.10"})
    assert pushed.json()["data"] == {"instrument_token": INFY, "last_price": "1600.1"}
    ltp = (await kite.get("/quote/ltp", params={"i": "NSE:INFY"})).json()["data"]
    assert ltp["NSE:INFY"]["last_price"] == 1600.1

    bad = await kite.post("/_sim/price", json={"token": INFY, "price": "1600.05"})
    assert bad.status_code == 400
    assert "tick size" in bad.json()["message"]
    bad_rule = await kite.post("/_sim/faults", json={"kind": "error", "rate": 7})
    assert bad_rule.status_code == 400
    assert bad_rule.json()["message"].startswith("rate:")

    rule = await kite.post(
        "/_sim/faults",
        json=[{"kind": "error", "endpoint": "profile", "error_type": "DataException", "times": 1}],
    )
    assert rule.json()["data"][0]["kind"] == "error"
    assert (await kite.get("/user/profile")).status_code == 502
    assert (await kite.get("/user/profile")).status_code == 200

    await kite.post("/_sim/funds", json={"available": "100"})
    rejected = (await kite.post("/orders/regular", data=ORDER)).json()["data"]["order_id"]
    orders = (await kite.get("/_sim/orders")).json()["data"]
    assert orders[0]["order_id"] == rejected
    assert orders[0]["status"] == "REJECTED"
    assert orders[0]["history"][-1]["status"] == "REJECTED"

    state = (await kite.get("/_sim/state")).json()["data"]
    assert state["counters"]["rest_place_order"] == 1
    assert state["faults_fired"] == {"error": 1}
    assert state["api_url"] == sim.api_url
    assert state["ws_url"] == sim.ws_url
    await kite.post("/_sim/reset")
    assert (await kite.get("/orders")).json()["data"] == []
    assert (await kite.post("/_sim/nothing")).status_code == 404


async def test_session_expiry_mid_run(sim: Simulator, kite: httpx.AsyncClient) -> None:
    """After the expiry switch every call is 403 TokenException until a new login."""
    assert (await kite.get("/orders")).status_code == 200
    await kite.post("/_sim/session/expire")
    expired = await kite.get("/orders")
    assert expired.status_code == 403
    assert expired.json()["error_type"] == "TokenException"
    token = (await kite.post("/_sim/session/renew")).json()["data"]["access_token"]
    renewed = await kite.get("/orders", headers={"Authorization": f"token {sim.api_key}:{token}"})
    assert renewed.status_code == 200
