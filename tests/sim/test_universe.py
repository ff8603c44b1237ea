"""The built-in universe: real NSE tokens, symbols, tick sizes, and Kite's dump format."""

from __future__ import annotations

import csv
import io

from hmt.sim.universe import INDICES_SEGMENT, Universe
from tests.sim.support import BANKNIFTY, INFY, NIFTY
from tests.support.services import kite_fixture

WELL_KNOWN = {
    "INFY": 408065,
    "RELIANCE": 738561,
    "TCS": 2953217,
    "HDFCBANK": 341249,
    "ICICIBANK": 1270529,
    "SBIN": 779521,
    "TATASTEEL": 895745,
    "IOC": 415745,
    "BHEL": 112129,
    "NIFTY 50": NIFTY,
    "NIFTY BANK": BANKNIFTY,
}


def test_at_least_twenty_tradables_and_the_two_indices() -> None:
    """There are >= 20 tradable NSE equities plus NIFTY 50 and NIFTY BANK as indices."""
    universe = Universe()
    tradable = [i for i in universe if not i.is_index]
    assert len(tradable) >= 20
    nifty, bank = universe.get(NIFTY), universe.get(BANKNIFTY)
    assert nifty is not None
    assert nifty.tradingsymbol == "NIFTY 50"
    assert bank is not None
    assert bank.tradingsymbol == "NIFTY BANK"
    assert nifty.token & 0xFF == INDICES_SEGMENT == bank.token & 0xFF


def test_tokens_are_the_real_ones() -> None:
    """Well-known tokens (also used by the orders fixture) map to their symbols."""
    universe = Universe()
    for symbol, token in WELL_KNOWN.items():
        found = universe.get(token)
        assert found is not None
        assert found.tradingsymbol == symbol


def test_rows_shared_with_the_fixture_dump_agree_with_it() -> None:
    """Every instrument that is also in instruments_nse.csv has the fixture's values."""
    fixture = {
        row["instrument_token"]: row
        for row in csv.DictReader(io.StringIO(kite_fixture("instruments_nse.csv").read_text()))
    }
    ours = {
        row["instrument_token"]: row
        for row in csv.DictReader(io.StringIO(Universe().instruments_csv()))
    }
    shared = set(fixture) & set(ours)
    assert len(shared) >= 4
    for token in shared:
        for column in (
            "exchange_token",
            "tradingsymbol",
            "name",
            "tick_size",
            "lot_size",
            "instrument_type",
            "segment",
            "exchange",
        ):
            assert ours[token][column] == fixture[token][column], (token, column)


def test_dump_has_kites_columns_and_one_row_per_instrument() -> None:
    """The CSV header is the fixture's header, byte for byte."""
    universe = Universe()
    text = universe.instruments_csv()
    header = kite_fixture("instruments_nse.csv").read_text().splitlines()[0]
    assert text.splitlines()[0] == header
    assert len(text.splitlines()) == len(universe) + 1
    assert universe.instruments_csv("BSE").splitlines()[1:] == []


def test_start_prices_are_on_each_instruments_tick_grid() -> None:
    """Every previous close is a positive multiple of the instrument's tick."""
    for instrument in Universe():
        assert instrument.close > 0
        assert instrument.close % instrument.tick == 0
        assert instrument.token == (instrument.exchange_token << 8) | instrument.segment


def test_lookup_by_key() -> None:
    """Instruments are found by EXCHANGE:TRADINGSYMBOL, as the quote endpoints name them."""
    universe = Universe()
    infy = universe.by_key("NSE:INFY")
    assert infy is not None
    assert infy.token == INFY
    assert universe.by_key("NSE:NOPE") is None


def test_fno_rows_come_from_the_full_fixture_dump_with_lots_above_one() -> None:
    """The NFO options are the fixture's rows, column for column, so lot sizes can be tested."""
    fixture = {
        row["instrument_token"]: row
        for row in csv.DictReader(io.StringIO(kite_fixture("instruments_all.csv").read_text()))
    }
    ours = list(csv.DictReader(io.StringIO(Universe().instruments_csv("NFO"))))
    assert len(ours) >= 1
    assert any(int(row["lot_size"]) > 1 for row in ours)
    for row in ours:
        assert row == fixture[row["instrument_token"]], row["tradingsymbol"]
