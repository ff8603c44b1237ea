"""The Upstox simulator's feed stall (the chaos campaign's `ticker_stall` on Upstox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import instrument_id
from tests.support.eventually import eventually
from tests.upstox.test_feed import RELIANCE, USDINR, feed_for


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=9) as running:
        yield running


async def test_a_stalled_feed_holds_its_moves_and_sends_each_latest_price_after(
    sim: UpstoxSim,
) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([instrument_id(RELIANCE), instrument_id(USDINR)])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 2)
        sim.stall_feeds(0.3)
        await sim.push_price(RELIANCE, 2501.0)
        await sim.push_price(RELIANCE, 2502.0)
        await asyncio.sleep(0.1)
        assert len(seen) == 2, "a stalled connection sent a frame"
        await eventually(lambda: len(seen) == 3)
        assert seen[2] == (instrument_id(RELIANCE), 250_200)  # the latest price, once
        assert feed.stats.connects == 1  # the connection stayed open
        await sim.push_price(USDINR, 84.5025)
        await eventually(lambda: len(seen) == 4)
    finally:
        await feed.stop()


async def test_a_stall_without_an_end_lasts_until_resumed(sim: UpstoxSim) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([instrument_id(RELIANCE)])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 1)
        sim.stall_feeds()
        await sim.push_price(RELIANCE, 2503.0)
        await asyncio.sleep(0.2)
        assert len(seen) == 1
        sim.resume_feeds()
        await eventually(lambda: seen[-1] == (instrument_id(RELIANCE), 250_300))
    finally:
        await feed.stop()
