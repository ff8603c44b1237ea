"""Instrument search: Kite's daily dump, fetched through the runtime's broker client, searched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hmt.api.instruments import search, tradable
from hmt.core.instruments import Instrument, Listing
from hmt.core.types import Exchange, InstrumentToken
from hmt.kite.instruments import parse_dump
from tests.support.brokers import UPSTOX_RELIANCE
from tests.support.services import kite_fixture
from tests.support.system import running_system
from tests.support.two_brokers import kite_beside_upstox, link_upstox

KITE_RELIANCE = 738561  # the Kite simulator's NSE:RELIANCE


def test_search_puts_the_exact_symbol_first_and_leaves_out_indices() -> None:
    """Kite's own NSE dump: an exact symbol outranks its prefixes; at most 20 results."""
    listings = tradable(parse_dump(kite_fixture("instruments_nse.csv").read_text()), Exchange.NSE)
    assert listings
    symbol = listings[0].instrument.tradingsymbol
    found = search(listings, symbol.lower())
    assert found[0].instrument.tradingsymbol == symbol
    assert len(search(listings, symbol[:1])) <= 20
    index = Listing(Instrument(InstrumentToken(256265), Exchange.NSE, "NIFTY 50", 100, 0, 0, False))
    assert tradable([index], Exchange.NSE) == []


async def test_search_through_the_api_needs_a_token_and_finds_the_simulators_symbols(
    tmp_path: Path,
) -> None:
    """GET /instruments?q= proxies the broker's dump (here the simulator's) for signed-in users."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system:
        assert (await system.client.get("/instruments", params={"q": "INF"})).status_code == 401
        found = await system.client.get("/instruments", params={"q": "inf"}, headers=system.auth())
        assert found.status_code == 200, found.text
        first = found.json()[0]
        assert (first["tradingsymbol"], first["instrument_token"]) == ("INFY", 408065)
        assert first["broker"] == "kite"
        again = await system.client.get("/instruments", params={"q": "TCS"}, headers=system.auth())
        assert again.json()[0]["tradingsymbol"] == "TCS"
        empty = await system.client.get("/instruments", params={"q": ""}, headers=system.auth())
        assert empty.status_code == 422
        assert empty.json()["errors"][0]["field"] == "q"
        bad = await system.client.get(
            "/instruments", params={"q": "A", "exchange": "XYZ"}, headers=system.auth()
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "exchange"


async def test_indices_true_adds_the_indices_a_trigger_can_watch(tmp_path: Path) -> None:
    """The watched-instrument search finds NIFTY 50; the order search never offers it."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system:
        orders = await system.client.get(
            "/instruments", params={"q": "NIFTY"}, headers=system.auth()
        )
        assert "NIFTY 50" not in [i["tradingsymbol"] for i in orders.json()]
        watched = await system.client.get(
            "/instruments", params={"q": "NIFTY 50", "indices": "true"}, headers=system.auth()
        )
        assert watched.status_code == 200, watched.text
        first = watched.json()[0]
        assert (first["tradingsymbol"], first["instrument_token"]) == ("NIFTY 50", 256265)
        tcs = await system.client.get(
            "/instruments", params={"q": "TCS", "indices": "true"}, headers=system.auth()
        )
        assert tcs.json()[0]["tradingsymbol"] == "TCS"


async def test_each_result_names_its_broker_and_broker_keeps_one(database_url: str) -> None:
    """A Kite engine with a linked Upstox account lists RELIANCE once per broker: each says
    whose it is, and `broker=` keeps that broker's only (a trigger's instruments must be
    its account's broker's); a broker hmt does not know is a 422 naming `broker`."""
    async with kite_beside_upstox(database_url) as (system, upstox):
        await link_upstox(system, upstox)

        async def find(**params: str) -> list[dict[str, Any]]:
            found = await system.client.get(
                "/instruments", params={"q": "RELIANCE", **params}, headers=system.auth()
            )
            assert found.status_code == 200, found.text
            return [i for i in found.json() if i["tradingsymbol"] == "RELIANCE"]

        both = await find()  # the link made the copy stale: this search fetched both
        assert {(i["broker"], i["instrument_token"]) for i in both} == {
            ("kite", KITE_RELIANCE),
            ("upstox", UPSTOX_RELIANCE.token),
        }
        assert all(i["exchange"] == "NSE" and i["lot_size"] == 1 for i in both)  # unchanged
        (kite,) = await find(broker="kite")
        assert (kite["broker"], kite["instrument_token"]) == ("kite", KITE_RELIANCE)
        (theirs,) = await find(broker="upstox")
        assert (theirs["broker"], theirs["instrument_token"]) == ("upstox", UPSTOX_RELIANCE.token)
        infy = await system.client.get(
            "/instruments", params={"q": "INFY", "broker": "upstox"}, headers=system.auth()
        )
        assert "INFY" not in [i["tradingsymbol"] for i in infy.json()]  # Kite's only
        bad = await system.client.get(
            "/instruments", params={"q": "RELIANCE", "broker": "paper"}, headers=system.auth()
        )
        assert bad.status_code == 422, bad.text
        assert bad.json()["errors"][0]["field"] == "broker"
