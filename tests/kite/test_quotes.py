"""Kite's quote API as the engine's QuotePort, over loopback against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping

import pytest

from hmt.core.instruments import Instrument
from hmt.kite.instruments import KiteInstruments
from hmt.kite.quotes import KiteQuotes
from hmt.kite.rest import KiteRest, client_names
from hmt.sim.simulator import Simulator
from tests.support.factories import INFY, RELIANCE

UNLISTED = 99_999_999


@pytest.fixture(params=client_names())
async def quotes(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Simulator, KiteQuotes]]:
    async with Simulator(seed=3) as sim:
        rest = KiteRest(
            api_url=sim.api_url,
            api_key=sim.api_key,
            access_token=sim.access_token,
            client=request.param,
        )
        listings = await KiteInstruments(rest).fetch()
        by_id = {item.instrument.id: item.instrument for item in listings}

        async def listed(tokens: Collection[int]) -> Mapping[int, Instrument]:
            return {token: by_id[token] for token in tokens if token in by_id}

        try:
            yield sim, KiteQuotes(rest, listed, interval=0.0)
        finally:
            await rest.aclose()


async def test_day_ranges_are_the_day_high_and_low_in_wire_units(
    quotes: tuple[Simulator, KiteQuotes],
) -> None:
    sim, port = quotes
    for price in ("1600.00", "1540.10", "1612.40", "1601.00"):
        sim.push_price(INFY, price)
    sim.push_price(RELIANCE, "1400.00")
    ranges = await port.day_ranges([INFY, RELIANCE, UNLISTED])
    assert ranges == {INFY: (161_240, 154_010), RELIANCE: (140_000, 140_000)}
    assert sim.counters["rest_ohlc"] == 1  # one request for every instrument
