"""The Upstox simulator's other users (`UpstoxSim.add_account`): each its own app, token,
order book and login; one user's expiry leaves the other's token working."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.model import OrderIntent
from hmt.core.types import Exchange, Leg, OrderType, Product, Side, TriggerId
from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import build_master, instrument_id
from hmt.upstox.orders import UpstoxOrders
from hmt.upstox.rest import UpstoxRest
from hmt.upstox.session import exchange_code, login_url
from hmt.upstox.tags import broker_tag

RELIANCE = "NSE_EQ|INE002A01018"


def _intent(trigger: str) -> OrderIntent:
    return OrderIntent(
        trigger_id=TriggerId(trigger),
        leg=Leg.FIRST,
        tag=broker_tag(trigger, Leg.FIRST),
        instrument_token=instrument_id(RELIANCE),
        exchange=Exchange.NSE,
        tradingsymbol="RELIANCE",
        side=Side.BUY,
        quantity=1,
        product=Product.MIS,
        order_type=OrderType.MARKET,
        limit_price=None,
        price_divisor=100,
    )


async def test_each_user_has_its_own_book_token_and_login() -> None:
    async with UpstoxSim(seed=4) as sim:
        second = sim.add_account("SIM002")
        assert (second.client_id, second.access_token) != (sim.client_id, sim.access_token)
        with pytest.raises(ValueError, match="exists"):
            sim.add_account("SIM002")
        master = build_master(sim.instruments.values())
        first_rest = UpstoxRest(access_token=sim.access_token, api_url=sim.api_url, timeout=1.0)
        second_rest = UpstoxRest(access_token=second.access_token, api_url=sim.api_url, timeout=1.0)
        try:
            first, other = (
                UpstoxOrders(first_rest, master.key_for),
                UpstoxOrders(second_rest, master.key_for),
            )
            mine = await first.place(_intent("t-first"))
            theirs = await other.place(_intent("t-second"))
            assert list(sim.orders) == [mine]
            assert list(second.orders) == [theirs]
            assert [o.order_id for o in await other.orders()] == [theirs]
            assert await other.find(broker_tag("t-first", Leg.FIRST)) == []
            assert second.order_rows()[0]["placed_by"] == "SIM002"

            # Its login: the dialog for its client id, the code exchanged with its secret.
            url = login_url(second.client_id, sim.redirect_uri, state="s", api_url=sim.api_url)
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, allow_redirects=False) as answer,
            ):
                code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
            with pytest.raises(BrokerError):  # another app's secret: refused, and used up
                await exchange_code(
                    code=code,
                    client_id=second.client_id,
                    client_secret=sim.client_secret,
                    redirect_uri=sim.redirect_uri,
                    api_url=sim.api_url,
                )
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, allow_redirects=False) as answer,
            ):
                code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
            got = await exchange_code(
                code=code,
                client_id=second.client_id,
                client_secret=second.client_secret,
                redirect_uri=sim.redirect_uri,
                api_url=sim.api_url,
            )
            assert got == second.access_token

            # Its expiry: its token refused, the first user's still works.
            second.expire_session()
            with pytest.raises(BrokerError) as refused:
                await other.orders()
            assert refused.value.kind is ErrorKind.AUTH
            assert [o.order_id for o in await first.orders()] == [mine]
        finally:
            await first_rest.aclose()
            await second_rest.aclose()
