"""Index futures and options: expiries from the simulator's date, lots, ticks, tokens, the dump."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import pytest

from hmt.kite.instruments import parse_dump
from hmt.sim.derivatives import (
    LOT_SIZES,
    STRIKES_EACH_SIDE,
    index_derivatives,
    last_tuesday,
    option_symbol,
    standard_universe,
)
from hmt.sim.prices import IST
from hmt.sim.simulator import Simulator
from hmt.sim.universe import DEFAULT_INSTRUMENTS, NFO_SEGMENT
from tests.sim.support import BANKNIFTY, NIFTY

MONDAY = date(2026, 11, 30)


def test_lot_sizes_are_nses_current_ones() -> None:
    """NSE/FAOP/70616: NIFTY 65, BANKNIFTY 30 from the January 2026 contracts."""
    assert LOT_SIZES == {"NIFTY": 65, "BANKNIFTY": 30}


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [(2026, 12, date(2026, 12, 29)), (2027, 2, date(2027, 2, 23)), (2026, 6, date(2026, 6, 30))],
)
def test_monthly_expiry_is_the_last_tuesday(year: int, month: int, expected: date) -> None:
    assert last_tuesday(year, month) == expected


def test_expiries_follow_the_date() -> None:
    """NIFTY: the next two Tuesdays and the month's last; BANKNIFTY monthly only; 3 futures."""
    made = index_derivatives(MONDAY, DEFAULT_INSTRUMENTS)
    nifty_opts = {i.expiry for i in made if i.name == "NIFTY" and i.kind == "CE"}
    bank_opts = {i.expiry for i in made if i.name == "BANKNIFTY" and i.kind == "PE"}
    futures = sorted(i.tradingsymbol for i in made if i.kind == "FUT")
    assert nifty_opts == {"2026-12-01", "2026-12-08", "2026-12-29"}
    assert bank_opts == {"2026-12-29", "2027-01-26"}
    assert futures == [
        "BANKNIFTY26DECFUT",
        "BANKNIFTY27FEBFUT",
        "BANKNIFTY27JANFUT",
        "NIFTY26DECFUT",
        "NIFTY27FEBFUT",
        "NIFTY27JANFUT",
    ]
    # On an expiry day that day's contract is still listed; the day after it is gone.
    on_expiry = index_derivatives(date(2026, 12, 29), DEFAULT_INSTRUMENTS)
    after = index_derivatives(date(2026, 12, 30), DEFAULT_INSTRUMENTS)
    assert any(i.tradingsymbol == "NIFTY26DECFUT" for i in on_expiry)
    assert not any(i.expiry == "2026-12-29" for i in after)


def test_symbols_use_kites_weekly_and_monthly_forms() -> None:
    assert option_symbol("NIFTY", date(2026, 12, 8), 25000, "CE") == "NIFTY26D0825000CE"
    assert option_symbol("NIFTY", date(2026, 10, 6), 25000, "PE") == "NIFTY26O0625000PE"
    assert option_symbol("NIFTY", date(2026, 12, 29), 25000, "PE") == "NIFTY26DEC25000PE"


def test_contracts_have_lots_ticks_tokens_and_strikes_around_the_index() -> None:
    universe = standard_universe(MONDAY)
    nifty, bank = universe.get(NIFTY), universe.get(BANKNIFTY)
    assert nifty is not None
    assert bank is not None
    made = [i for i in universe if i.exchange == "NFO" and i.name in LOT_SIZES]
    assert made
    for i in made:
        assert i.lot_size == LOT_SIZES[i.name]
        assert i.tick == 5
        assert i.divisor == 100
        assert i.segment == NFO_SEGMENT
        assert i.token == (i.exchange_token << 8) | 2
        assert i.close > 0
        assert i.close % i.tick == 0
    strikes = {float(i.strike) for i in made if i.name == "NIFTY" and i.kind == "CE"}
    assert min(strikes) == 25000 - 50 * STRIKES_EACH_SIDE
    assert max(strikes) == 25000 + 50 * STRIKES_EACH_SIDE
    bank_strikes = {float(i.strike) for i in made if i.name == "BANKNIFTY" and i.kind == "PE"}
    assert 55000.0 in bank_strikes
    assert len(bank_strikes) == 2 * STRIKES_EACH_SIDE + 1
    # Deep in-the-money calls are worth about their intrinsic value; far puts little.
    deep = universe.by_key("NFO:NIFTY26D0124500CE")
    far = universe.by_key("NFO:NIFTY26D0124500PE")
    assert deep is not None
    assert far is not None
    assert 50_000 <= deep.close < 51_000
    assert far.close < 500


def test_the_kite_adapter_reads_the_dump_indices_untradable() -> None:
    """The engine's master reads every row: indices not tradable, F&O with their lots."""
    listings = {
        (x.instrument.exchange.value, x.instrument.tradingsymbol): x.instrument
        for x in parse_dump(standard_universe(MONDAY).instruments_csv())
    }
    assert not listings[("NSE", "NIFTY 50")].tradable
    assert listings[("NSE", "NIFTY 50")].id == NIFTY
    assert not listings[("NSE", "NIFTY BANK")].tradable
    option = listings[("NFO", "NIFTY26D0825000PE")]
    assert option.tradable
    assert option.lot_size == 65
    assert option.tick_size == 5
    future = listings[("NFO", "BANKNIFTY26DECFUT")]
    assert future.tradable
    assert future.lot_size == 30


async def test_the_simulator_serves_contracts_of_its_own_date() -> None:
    """The dump a client downloads lists F&O expiring after the simulator's date; an
    index is refused as an order; an option fills by whole lots only."""
    noon = datetime(2027, 3, 10, 12, 0, tzinfo=IST).timestamp()
    async with Simulator(seed=4, clock=lambda: noon) as sim:
        headers = {"Authorization": f"token {sim.api_key}:{sim.access_token}"}
        async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as kite:
            dump = (await kite.get("/instruments/NFO")).text
            assert "NIFTY27MARFUT" in dump  # 30 March 2027
            assert "NIFTY27MAR" in dump
            assert "NIFTY27FEBFUT" not in dump
            option = "NIFTY27MAR25000CE"
            order = {
                "exchange": "NFO",
                "tradingsymbol": option,
                "transaction_type": "BUY",
                "order_type": "LIMIT",
                "quantity": "65",
                "product": "NRML",
                "price": "5000",
            }
            placed = await kite.post("/orders/regular", data=order)
            assert placed.status_code == 200
            odd = await kite.post("/orders/regular", data={**order, "quantity": "75"})
            index = await kite.post(
                "/orders/regular", data={**order, "exchange": "NSE", "tradingsymbol": "NIFTY 50"}
            )
            book = {o["order_id"]: o for o in (await kite.get("/orders")).json()["data"]}
    assert book[placed.json()["data"]["order_id"]]["status"] == "COMPLETE"
    rejected = book[odd.json()["data"]["order_id"]]
    assert rejected["status"] == "REJECTED"
    assert "lot size 65" in rejected["status_message"]
    assert index.status_code == 400
    assert index.json()["error_type"] == "InputException"
    assert "index" in index.json()["message"]
