"""The official KiteConnect client, unchanged, against the simulator, faults included."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from kiteconnect import KiteConnect, exceptions

from hmt.sim.simulator import Simulator

ORDER: dict[str, Any] = {
    "variety": "regular",
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 2,
    "product": "CNC",
    "order_type": "MARKET",
    "market_protection": -1,
    "tag": "hmtK1",
}


def client(sim: Simulator, timeout: float = 7) -> KiteConnect:
    return KiteConnect(
        sim.api_key, access_token=sim.access_token, root=sim.api_url, timeout=timeout
    )


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking kiteconnect call off the loop that serves the simulator."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_places_an_order_and_reads_it_back(sim: Simulator) -> None:
    """place_order returns the id; orders() and order_history() show it COMPLETE."""
    kite = client(sim)
    order_id = await call(kite.place_order, **ORDER)
    assert isinstance(order_id, str)
    assert len(order_id) == 19
    [row] = await call(kite.orders)
    assert (row["order_id"], row["status"], row["tag"]) == (order_id, "COMPLETE", "hmtK1")
    history = await call(kite.order_history, order_id)
    assert history[-1]["status"] == "COMPLETE"
    assert history[0]["status"] == "PUT ORDER REQ RECEIVED"
    trades = await call(kite.order_trades, order_id)
    assert trades[0]["quantity"] == 2


async def test_limit_order_modify_and_cancel(sim: Simulator) -> None:
    """modify_order and cancel_order work as the client calls them."""
    kite = client(sim)
    order_id = await call(
        kite.place_order,
        **{**ORDER, "order_type": "LIMIT", "price": 1400, "market_protection": None},
    )
    await call(kite.modify_order, "regular", order_id, price=1410)
    await call(kite.cancel_order, "regular", order_id)
    assert (await call(kite.order_history, order_id))[-1]["status"] == "CANCELLED"


async def test_market_order_without_protection_raises_input_exception(sim: Simulator) -> None:
    """The client's default (no market_protection) meets Kite's April 2026 refusal."""
    kite = client(sim)
    with pytest.raises(exceptions.InputException, match="market protection") as caught:
        await call(kite.place_order, **{**ORDER, "market_protection": None})
    assert caught.value.code == 400


async def test_exchanges_a_request_token(sim: Simulator) -> None:
    """generate_session with the api secret returns a working access token."""
    kite = KiteConnect(sim.api_key, root=sim.api_url)
    session = await call(kite.generate_session, sim.request_token(), api_secret=sim.api_secret)
    assert session["access_token"] in sim.sessions.access_tokens
    kite.set_access_token(session["access_token"])
    assert (await call(kite.profile))["user_id"] == sim.sessions.user_id
    await call(kite.invalidate_access_token)
    with pytest.raises(exceptions.TokenException):
        await call(kite.profile)


async def test_instruments_and_quotes(sim: Simulator) -> None:
    """instruments() parses the dump; ltp and quote answer by EXCHANGE:SYMBOL."""
    kite = client(sim)
    instruments = await call(kite.instruments, "NSE")
    assert any(
        i["tradingsymbol"] == "RELIANCE" and i["instrument_token"] == 738561 for i in instruments
    )
    sim.push_price(408065, "1612.30")
    assert (await call(kite.ltp, "NSE:INFY"))["NSE:INFY"]["last_price"] == 1612.3
    quote = (await call(kite.quote, ["NSE:INFY"]))["NSE:INFY"]
    assert len(quote["depth"]["buy"]) == 5


@pytest.mark.parametrize(
    ("error_type", "status", "raised"),
    [
        ("NetworkException", None, exceptions.NetworkException),
        ("NetworkException", 429, exceptions.NetworkException),
        ("TokenException", None, exceptions.TokenException),
        ("InputException", None, exceptions.InputException),
        ("OrderException", None, exceptions.OrderException),
        ("DataException", None, exceptions.DataException),
        ("PermissionException", None, exceptions.PermissionException),
        ("GeneralException", 504, exceptions.GeneralException),
        ("MarginException", None, exceptions.GeneralException),  # FACTS 2.3: no such class
    ],
)
async def test_injected_errors_raise_the_matching_exception(
    sim: Simulator, error_type: str, status: int | None, raised: type[Exception]
) -> None:
    """Each error type surfaces as kiteconnect's class for it, with the HTTP code."""
    sim.faults.add(kind="error", endpoint="place_order", error_type=error_type, status=status)
    with pytest.raises(raised) as caught:
        await call(client(sim).place_order, **ORDER)
    expected = (
        status
        or {
            "NetworkException": 503,
            "TokenException": 403,
            "InputException": 400,
            "OrderException": 500,
            "DataException": 502,
            "PermissionException": 403,
            "MarginException": 400,
        }[error_type]
    )
    assert caught.value.code == expected  # type: ignore[attr-defined]
    assert sim.orders() == []


async def test_rate_limit_over_ten_orders_a_second(sim: Simulator) -> None:
    """The 11th order inside one second is refused with 429 (a frozen clock keeps it inside)."""
    sim.broker.rate_limiter.clock = lambda: 5.0
    kite = client(sim)
    for _ in range(10):
        await call(kite.place_order, **ORDER)
    with pytest.raises(exceptions.NetworkException, match="Too many requests") as caught:
        await call(kite.place_order, **ORDER)
    assert caught.value.code == 429
    assert len(sim.orders()) == 10


async def test_accept_then_error_leaves_the_order_in_the_book(sim: Simulator) -> None:
    """The client sees a 5xx, yet the order exists: the case reconcile-by-tag is for."""
    sim.faults.add(kind="accept_then_error", endpoint="place_order", times=1)
    with pytest.raises(exceptions.NetworkException):
        await call(client(sim).place_order, **ORDER)
    [row] = sim.orders()
    assert row["tag"] == "hmtK1"
    assert row["status"] == "COMPLETE"


async def test_accept_then_close_drops_the_socket_after_booking(sim: Simulator) -> None:
    """The connection closes with no answer, and the order was placed."""
    sim.faults.add(kind="accept_then_close", endpoint="place_order", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        await call(client(sim).place_order, **ORDER)
    assert len(sim.orders()) == 1


async def test_close_drops_the_socket_before_booking(sim: Simulator) -> None:
    """A `close` fault cuts the connection and nothing is placed: safe to retry."""
    sim.faults.add(kind="close", endpoint="place_order", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        await call(client(sim).place_order, **ORDER)
    assert sim.orders() == []
    await call(client(sim).place_order, **ORDER)
    assert len(sim.orders()) == 1


async def test_never_answer_times_the_client_out_with_the_order_booked(sim: Simulator) -> None:
    """The request is accepted and held; the client's own timeout fires; the order exists."""
    sim.faults.add(kind="never_answer", endpoint="place_order", times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        await call(client(sim, timeout=0.5).place_order, **ORDER)
    assert len(sim.orders()) == 1


@pytest.mark.parametrize("kind", ["accept_then_delay", "latency"])
async def test_slow_answers_still_arrive(sim: Simulator, kind: str) -> None:
    """Latency (before) and a delayed answer (after booking) both end in success."""
    sim.faults.add(kind=kind, endpoint="place_order", delay=0.3, times=1)
    order_id = await call(client(sim).place_order, **ORDER)
    assert [r["order_id"] for r in sim.orders()] == [order_id]
    assert sim.faults.fired == {kind: 1}


async def test_session_expiry_calls_the_clients_hook(sim: Simulator) -> None:
    """Flipping the session to expired mid-run gives TokenException and the expiry hook."""
    kite = client(sim)
    expired: list[bool] = []
    kite.set_session_expiry_hook(lambda: expired.append(True))
    await call(kite.orders)
    sim.expire_session()
    with pytest.raises(exceptions.TokenException):
        await call(kite.orders)
    assert expired == [True]


async def test_error_rate_is_reproducible_for_a_seed() -> None:
    """With a 40% NetworkException rate, the same seed fails the same calls."""

    async def outcomes(seed: int) -> list[bool]:
        async with Simulator(seed=seed) as sim:
            sim.faults.add(kind="error", endpoint="profile", rate=0.4)
            kite, seen = client(sim), []
            for _ in range(25):
                try:
                    await call(kite.profile)
                    seen.append(True)
                except exceptions.NetworkException:
                    seen.append(False)
            return seen

    print("seeds 21 and 22")
    first = await outcomes(21)
    assert first == await outcomes(21)
    assert first != await outcomes(22)
    assert True in first
    assert False in first
