"""The Upstox master parser, on a generated fixture in Upstox's JSON format, and from the sim."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.types import Exchange, InstrumentToken
from hmt.sim.upstox.server import UpstoxSim
from hmt.sim.upstox.universe import INSTRUMENTS
from hmt.upstox import instruments
from hmt.upstox.instruments import (
    MasterError,
    UnknownInstrument,
    UpstoxInstruments,
    instrument_id,
    parse_master,
    unlisted,
)
from hmt.upstox.rest import UpstoxRest

FIXTURE = Path(__file__).parent / "fixtures" / "instruments.generated.json"


def by_symbol(master: instruments.Master) -> dict[str, instruments.Instrument]:
    return {listing.instrument.tradingsymbol: listing.instrument for listing in master.listings}


def test_the_generated_master_reads_with_tick_sizes_in_paise() -> None:
    master = parse_master(FIXTURE.read_bytes())
    assert master.skipped == 5
    found = by_symbol(master)
    assert set(found) == {
        "RELIANCE", "SBIN", "NIFTY FUT 30 DEC 26", "USDINR FUT 29 DEC 26", "NIFTY",
        "TATASTEEL", "CRUDEOIL FUT 18 DEC 26",
    }  # fmt: skip
    reliance = found["RELIANCE"]
    assert (reliance.exchange, reliance.price_divisor, reliance.tick_size, reliance.lot_size) == (
        Exchange.NSE, 100, 5, 1,
    )  # fmt: skip
    assert reliance.id == instrument_id("NSE_EQ|INE002A01018")
    assert master.key_for(reliance.id) == "NSE_EQ|INE002A01018"
    future = found["NIFTY FUT 30 DEC 26"]
    assert (future.exchange, future.tick_size, future.lot_size) == (Exchange.NFO, 10, 75)
    usdinr = found["USDINR FUT 29 DEC 26"]  # a 0.0025-rupee tick
    assert (usdinr.exchange, usdinr.price_divisor, usdinr.tick_size) == (Exchange.CDS, 10_000, 25)
    assert found["TATASTEEL"].tick_size == 1
    assert found["CRUDEOIL FUT 18 DEC 26"].exchange == Exchange.MCX
    nifty = found["NIFTY"]
    assert not nifty.tradable
    assert nifty.tick_size == 0


def test_gzip_and_plain_json_read_the_same() -> None:
    plain = parse_master(FIXTURE.read_bytes())
    packed = parse_master(gzip.compress(FIXTURE.read_bytes()))
    assert packed.listings == plain.listings


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{not json", "not JSON"),
        (b'{"a": 1}', "not a JSON array"),
        (b"\x1f\x8b\x08\x00broken", "gzip"),
    ],
)
def test_an_unusable_master_is_refused_as_a_whole(data: bytes, words: str) -> None:
    with pytest.raises(MasterError, match=words):
        parse_master(data)


def test_an_id_collision_refuses_the_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instruments, "instrument_id", lambda key: InstrumentToken(2**52 + 1))
    with pytest.raises(MasterError, match="collide"):
        instruments.build_master(INSTRUMENTS)


@given(st.text(min_size=1, max_size=40))
def test_ids_are_stable_and_between_kite_tokens_and_2_to_the_53(key: str) -> None:
    token = instrument_id(key)
    assert token == instrument_id(key)
    assert 2**32 < 2**52 <= token < 2**53
    assert instruments.is_upstox_id(token)


def test_unlisted_names_an_id_that_is_not_upstox() -> None:
    ours, errors = unlisted(instrument_id("NSE_EQ|X"), Exchange.NSE, "X")
    assert errors == []
    assert ours.tick_size == 0
    _, errors = unlisted(InstrumentToken(408065), Exchange.NSE, "INFY")
    assert [error.field for error in errors] == ["instrument_token"]


async def test_the_master_fetched_from_the_simulator() -> None:
    async with UpstoxSim() as sim:
        rest = UpstoxRest(access_token=sim.access_token, api_url=sim.api_url)
        try:
            data = await rest.raw(
                f"{sim.api_url}/market-quote/instruments/exchange/complete.json.gz"
            )
        finally:
            await rest.aclose()
    master = parse_master(data)
    assert sorted(master.keys.values()) == sorted(row["instrument_key"] for row in INSTRUMENTS)


async def test_the_instrument_source_keeps_the_days_master_for_the_ports() -> None:
    async with UpstoxSim() as sim:
        rest = UpstoxRest(access_token=sim.access_token, api_url=sim.api_url)
        source = UpstoxInstruments(
            rest, f"{sim.api_url}/market-quote/instruments/exchange/complete.json.gz"
        )
        try:
            with pytest.raises(UnknownInstrument, match="not in today's Upstox master"):
                source.key_for(instrument_id("NSE_FO|43919"))  # nothing fetched yet
            listings = await source.fetch()
            broken = UpstoxInstruments(rest, f"{sim.api_url}/_sim/state")
            with pytest.raises(BrokerError) as refused:
                await broken.fetch()
        finally:
            await rest.aclose()
    assert len(listings) == len(INSTRUMENTS)
    assert source.key_for(instrument_id("NSE_FO|43919")) == "NSE_FO|43919"
    assert source.divisor_for(instrument_id("NCD_FO|1234")) == 10_000
    assert refused.value.kind is ErrorKind.FINAL
    assert "not a JSON array" in refused.value.message
    _, errors = source.unlisted(InstrumentToken(5), Exchange.NSE, "X")
    assert errors
