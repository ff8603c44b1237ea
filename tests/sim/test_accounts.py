"""Several Kite accounts on one simulator (docs/simulator.md): each API key has its own
sessions and order book; the official client, unchanged, sees only its own account."""

from __future__ import annotations

import pytest
from kiteconnect import KiteConnect, exceptions

from hmt.sim.simulator import Simulator
from tests.sim.test_kiteconnect import ORDER, call, client


async def test_each_key_places_into_its_own_book_and_expires_alone(sim: Simulator) -> None:
    second = sim.add_account("SIM002")
    assert second.api_key != sim.api_key
    other = KiteConnect(second.api_key, access_token=second.access_token, root=sim.api_url)
    first_id = await call(client(sim).place_order, **ORDER)
    second_id = await call(other.place_order, **{**ORDER, "tag": "hmtK2"})
    assert first_id != second_id
    assert [row["tag"] for row in await call(client(sim).orders)] == ["hmtK1"]
    assert [row["tag"] for row in await call(other.orders)] == ["hmtK2"]
    assert (await call(other.profile))["user_id"] == "SIM002"
    assert [row["order_id"] for row in second.orders()] == [second_id]

    # One key's token with the other's key is refused: a session is the account's own.
    mixed = KiteConnect(second.api_key, access_token=sim.access_token, root=sim.api_url)
    with pytest.raises(exceptions.TokenException):
        await call(mixed.orders)

    second.expire_session()
    with pytest.raises(exceptions.TokenException):
        await call(other.place_order, **ORDER)
    assert len(await call(client(sim).orders)) == 1  # the first account still trades
    await call(client(sim).place_order, **ORDER)
    renewed = KiteConnect(second.api_key, access_token=second.renew_session(), root=sim.api_url)
    assert len(await call(renewed.orders)) == 1


async def test_an_accounts_login_exchange_uses_its_own_secret(sim: Simulator) -> None:
    second = sim.add_account("SIM002")
    kite = KiteConnect(second.api_key, root=sim.api_url)
    request_token = second.sessions.new_request_token()
    with pytest.raises(exceptions.TokenException):  # the first account's secret
        await call(kite.generate_session, request_token, api_secret=sim.api_secret)
    request_token = second.sessions.new_request_token()
    data = await call(kite.generate_session, request_token, api_secret=second.sessions.api_secret)
    assert data["user_id"] == "SIM002"
    assert second.sessions.valid(second.api_key, data["access_token"])
