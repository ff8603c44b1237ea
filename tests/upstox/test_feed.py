"""The Upstox feed client against the simulator: prices in units, reconnects, token expiry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hmt.sim.upstox.server import UpstoxSim
from hmt.upstox.feed import FeedState, SubscriptionLimitError, UpstoxFeed, backoff_delay
from hmt.upstox.feed_codec import Mode
from hmt.upstox.instruments import build_master
from tests.support.eventually import eventually

RELIANCE = "NSE_EQ|INE002A01018"
USDINR = "NCD_FO|1234"


@pytest.fixture
async def sim() -> AsyncIterator[UpstoxSim]:
    async with UpstoxSim(seed=9) as running:
        yield running


async def move(sim: UpstoxSim, key: str, ltp: float) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.api_url}/_sim/price", json={"instrument_key": key, "ltp": ltp}) as done,
    ):
        assert done.status == 200


def feed_for(sim: UpstoxSim, seen: list[tuple[int, int]], mode: Mode = Mode.LTPC) -> UpstoxFeed:
    master = build_master(sim.instruments.values())
    divisors = {l.instrument.id: l.instrument.price_divisor for l in master.listings}  # noqa: E741
    return UpstoxFeed(
        sim.access_token,
        key_for=master.key_for,
        divisor_for=divisors.__getitem__,
        on_ltp=lambda token, units: seen.append((token, units)),
        api_url=sim.api_url,
        mode=mode,
        reconnect_delay_s=0.05,
        reconnect_max_delay_s=0.2,
        rng=random.Random(1),
    )


def ids() -> dict[str, int]:
    from hmt.upstox.instruments import instrument_id

    return {RELIANCE: instrument_id(RELIANCE), USDINR: instrument_id(USDINR)}


@pytest.mark.parametrize("mode", [Mode.LTPC, Mode.FULL, Mode.OPTION_GREEKS])
async def test_prices_arrive_in_each_instruments_units(sim: UpstoxSim, mode: Mode) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen, mode)
    feed.subscribe([ids()[RELIANCE], ids()[USDINR]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) >= 2)
        assert set(seen) == {(ids()[RELIANCE], 250_000), (ids()[USDINR], 845_000)}
        await move(sim, RELIANCE, 2501.05)
        await move(sim, USDINR, 84.5025)
        await eventually(lambda: len(seen) >= 4)
        assert seen[2:] == [(ids()[RELIANCE], 250_105), (ids()[USDINR], 845_025)]
        assert feed.connected
    finally:
        await feed.stop()
    assert feed.stats.state is FeedState.STOPPED


async def test_a_dropped_socket_reconnects_with_a_fresh_url_and_resubscribes(
    sim: UpstoxSim,
) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([ids()[RELIANCE]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 1)
        sim.faults.add(kind="ws_drop", times=1)
        await move(sim, RELIANCE, 2502.0)  # this frame is the one dropped
        await eventually(lambda: feed.stats.connects == 2 and len(seen) == 2)
        assert seen[-1] == (ids()[RELIANCE], 250_200)  # the new connection's snapshot
        assert feed.stats.reconnects >= 1
    finally:
        await feed.stop()


async def test_a_rejected_upgrade_is_retried_until_it_connects(sim: UpstoxSim) -> None:
    seen: list[tuple[int, int]] = []
    sim.faults.add(kind="ws_reject", times=2)
    feed = feed_for(sim, seen)
    feed.subscribe([ids()[RELIANCE]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 1)
        assert sim.faults.fired["ws_reject"] == 2
        assert feed.stats.connects == 1
        assert feed.stats.reconnects >= 2
    finally:
        await feed.stop()


async def test_the_sdks_direct_connect_with_its_bearer_header_is_served(sim: UpstoxSim) -> None:
    headers = {"Authorization": f"Bearer {sim.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(sim.feed_url, headers=headers) as socket:
            first = await socket.receive_bytes(timeout=5)
        assert first  # the market_info frame
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(sim.feed_url, headers={"Authorization": "Bearer wrong"})
        assert refused.value.status == 401


async def test_a_malformed_frame_is_counted_and_the_feed_goes_on(sim: UpstoxSim) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([ids()[RELIANCE]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 1)
        sim.faults.add(kind="ws_malformed", times=1)
        await move(sim, RELIANCE, 2503.0)
        await move(sim, RELIANCE, 2504.0)
        await eventually(lambda: len(seen) == 2)
        assert seen[-1] == (ids()[RELIANCE], 250_400)
        assert sum(feed.stats.bad_frames.values()) == 1
        assert feed.stats.connects == 1
    finally:
        await feed.stop()


async def test_an_expired_token_waits_for_a_new_one(sim: UpstoxSim) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([ids()[RELIANCE]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 1)
        async with aiohttp.ClientSession() as http, http.post(f"{sim.api_url}/_sim/expire"):
            pass
        await eventually(lambda: feed.stats.state is FeedState.TOKEN_INVALID)
        connects = feed.stats.connects
        await asyncio.sleep(0.3)  # several backoffs' worth: no new connection meanwhile
        assert feed.stats.connects == connects
        feed.set_access_token(sim.access_token)
        await eventually(lambda: feed.connected and len(seen) == 2)
    finally:
        await feed.stop()


async def test_unsubscribed_keys_stop_arriving(sim: UpstoxSim) -> None:
    seen: list[tuple[int, int]] = []
    feed = feed_for(sim, seen)
    feed.subscribe([ids()[RELIANCE], ids()[USDINR]])
    await feed.start()
    try:
        await eventually(lambda: len(seen) == 2)
        feed.unsubscribe([ids()[USDINR]])
        await asyncio.sleep(0.1)
        await move(sim, USDINR, 85.0)
        await move(sim, RELIANCE, 2505.0)
        await eventually(lambda: len(seen) == 3)
        await asyncio.sleep(0.1)
        assert seen[2:] == [(ids()[RELIANCE], 250_500)]
        assert list(feed.subscriptions()) == [RELIANCE]
    finally:
        await feed.stop()


def test_the_subscription_limit_is_refused_whole() -> None:
    feed = UpstoxFeed(
        "t", key_for=lambda token: f"NSE_EQ|{token}", divisor_for=lambda _: 100,
        on_ltp=lambda *_: None, mode=Mode.FULL,
    )  # fmt: skip
    feed.subscribe(range(2000))
    with pytest.raises(SubscriptionLimitError, match="2001 instruments exceed"):
        feed.subscribe([5000])
    assert len(feed.subscriptions()) == 2000


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    rng = random.Random(4)
    delays = [backoff_delay(n, 1.0, 8.0, 0.0, rng) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    jittered = backoff_delay(3, 1.0, 8.0, 0.2, rng)
    assert 3.2 <= jittered <= 4.8


async def test_the_simulators_walk_moves_prices_on_the_tick_grid() -> None:
    seen: list[tuple[int, int]] = []
    async with UpstoxSim(seed=2, walk_every_s=0.01) as sim:
        feed = feed_for(sim, seen)
        feed.subscribe([ids()[RELIANCE], ids()[USDINR]])
        await feed.start()
        try:
            await eventually(lambda: len({units for _, units in seen}) >= 6)
        finally:
            await feed.stop()
    ticks = {ids()[RELIANCE]: 5, ids()[USDINR]: 25}
    assert all(units % ticks[token] == 0 for token, units in seen)


def test_the_walk_is_the_same_for_the_same_seed() -> None:
    first, second, other = UpstoxSim(seed=4), UpstoxSim(seed=4), UpstoxSim(seed=5)
    runs = [
        [(tuple(sim.step()), dict(sim.prices)) for _ in range(20)] for sim in (first, second, other)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
