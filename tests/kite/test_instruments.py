"""Kite's instrument dump read into core instruments: units, lots, indices, and the fallback."""

from __future__ import annotations

from hmt.core.types import Exchange, InstrumentToken
from hmt.kite.instruments import parse_dump, unlisted
from tests.support.services import kite_fixture

HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
    "tick_size,lot_size,instrument_type,segment,exchange\n"
)


def test_the_real_dumps_parse_with_wire_unit_ticks_and_lots() -> None:
    """Every row of Kite's own dumps parses; ticks become paise, F&O lots are kept."""
    everything = parse_dump(kite_fixture("instruments_all.csv").read_text())
    assert len(everything) == 99
    by_symbol = {i.instrument.tradingsymbol: i for i in everything}
    option = by_symbol["BANKNIFTY18JAN23500CE"].instrument
    assert (option.id, option.exchange, option.price_divisor) == (12073986, Exchange.NFO, 100)
    assert (option.tick_size, option.lot_size, option.tradable) == (5, 40, True)
    assert by_symbol["BANKNIFTY18JAN23500CE"].kind == "CE"
    nse = parse_dump(kite_fixture("instruments_nse.csv").read_text())
    assert len(nse) == 99
    assert all(i.instrument.exchange is Exchange.NSE and i.instrument.lot_size == 1 for i in nse)


def test_malformed_rows_are_skipped_and_indices_kept_as_not_tradable() -> None:
    """A bad token, a bad tick, a tick finer than the wire unit or an unknown exchange is
    skipped; an index (tick 0, segment INDICES) is listed but cannot be traded."""
    text = HEADER + (
        "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE\n"
        "x,1,BAD,BAD TOKEN,0.0,,0.0,0.05,1,EQ,NSE,NSE\n"
        "257,1,BADTICK,BAD TICK,0.0,,0.0,abc,1,EQ,NSE,NSE\n"
        "513,2,FINE,TOO FINE,0.0,,0.0,0.001,1,EQ,NSE,NSE\n"
        "769,3,ELSEWHERE,NOWHERE,0.0,,0.0,0.05,1,EQ,XX,XX\n"
        "256265,1001,NIFTY 50,NIFTY,0.0,,0.0,0.0,0,EQ,INDICES,NSE\n"
        "short,row\n"
    )
    infy, nifty = parse_dump(text)
    assert (infy.instrument.id, infy.instrument.tick_size, infy.name) == (408065, 5, "INFOSYS")
    assert (nifty.instrument.tradingsymbol, nifty.instrument.tradable) == ("NIFTY 50", False)


def test_without_a_master_kites_token_rules_still_check_exchange_and_index() -> None:
    """The fallback refuses an exchange the token's segment contradicts and marks an index."""
    instrument, errors = unlisted(InstrumentToken(408065), Exchange.NSE, "INFY")
    assert errors == []
    assert (instrument.price_divisor, instrument.tick_size, instrument.tradable) == (100, 0, True)
    _, errors = unlisted(InstrumentToken(408065), Exchange.BSE, "INFY")
    assert [(e.field, e.rule) for e in errors] == [("exchange", "mismatch")]
    assert "is not on BSE" in errors[0].message
    index, errors = unlisted(InstrumentToken(256265), Exchange.NSE, "NIFTY 50")
    assert (errors, index.tradable) == ([], False)
    currency, errors = unlisted(InstrumentToken(412675), Exchange.CDS, "USDINR26DECFUT")
    assert (errors, currency.price_divisor, currency.tradable) == ([], 10_000_000, True)
    _, errors = unlisted(InstrumentToken(0), Exchange.NSE, "X")
    assert errors == []  # the core's "positive" rule names it
