"""The Upstox simulator with instruments of the caller's (the engine bench's), a batch of
moves in one frame, and its timing hooks."""

from __future__ import annotations

import aiohttp

from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.instruments import instrument_id, parse_master
from tests.support.eventually import eventually
from tests.upstox.test_feed import feed_for

ROWS = [
    {
        "segment": "NSE_EQ",
        "exchange": "NSE",
        "instrument_type": "EQ",
        "instrument_key": f"NSE_EQ|BENCH{i}",
        "trading_symbol": f"BENCH{i}",
        "lot_size": 1,
        "tick_size": 5.0,
        "last_price": 1000.0,
    }
    for i in range(3)
]


async def test_its_master_frames_and_hooks_follow_the_instruments_it_was_given() -> None:
    frames: list[list[str]] = []
    paths: list[str] = []
    async with UpstoxSim(seed=3, instruments=ROWS) as sim:
        sim.on_frame = frames.append
        sim.on_request = lambda request: paths.append(request.path)
        async with aiohttp.ClientSession() as http:
            url = f"{sim.api_url}/market-quote/instruments/exchange/complete.json.gz"
            async with http.get(url) as answer:
                master = parse_master(await answer.read())
        assert [listing.instrument.tradingsymbol for listing in master.listings] == [
            "BENCH0",
            "BENCH1",
            "BENCH2",
        ]
        assert paths == ["/market-quote/instruments/exchange/complete.json.gz"]

        seen: list[tuple[int, int]] = []
        feed = feed_for(sim, seen)
        keys = [row["instrument_key"] for row in ROWS]
        feed.subscribe([instrument_id(key) for key in keys])
        await feed.start()
        try:
            await eventually(lambda: len(seen) == 3)  # the initial feed: one frame
            await sim.push_prices({keys[1]: 1000.05, keys[2]: 999.95})
            await eventually(lambda: len(seen) == 5)
        finally:
            await feed.stop()
        assert set(seen[3:]) == {
            (instrument_id(keys[1]), 100_005),
            (instrument_id(keys[2]), 99_995),
        }
        assert sorted(frames[-1]) == sorted(keys[1:])  # both moves in one frame
