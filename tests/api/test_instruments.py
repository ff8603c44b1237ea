"""Instrument search: Kite's daily dump, fetched through the runtime's broker client, searched."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hmt.api.instruments import parse_dump, search
from tests.support.services import kite_fixture
from tests.support.system import running_system


def test_the_real_nse_dump_parses_and_searches_exact_symbol_first() -> None:
    """Kite's own NSE dump: every tradable row parses; an exact symbol outranks its prefixes."""
    instruments = parse_dump(kite_fixture("instruments_nse.csv").read_text())
    assert instruments
    assert all(i.tick_size > 0 and i.exchange == "NSE" for i in instruments)
    symbol = instruments[0].tradingsymbol
    found = search(instruments, symbol.lower())
    assert found[0].tradingsymbol == symbol
    assert len(search(instruments, symbol[:1])) <= 20


def test_malformed_rows_and_indices_are_skipped_not_fatal() -> None:
    """A row with a bad token or tick, or an index (tick 0), is left out; good rows remain."""
    text = (
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
        "tick_size,lot_size,instrument_type,segment,exchange\n"
        "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE\n"
        "x,1,BAD,BAD TOKEN,0.0,,0.0,0.05,1,EQ,NSE,NSE\n"
        "1,1,BADTICK,BAD TICK,0.0,,0.0,abc,1,EQ,NSE,NSE\n"
        "256265,1,NIFTY 50,NIFTY,0.0,,0.0,0.0,0,EQ,INDICES,NSE\n"
        "short,row\n"
    )
    (infy,) = parse_dump(text)
    assert (infy.instrument_token, infy.tick_size) == (408065, Decimal("0.05"))


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
