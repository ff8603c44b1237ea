"""Our ticker client against the simulator: two independent codecs meet over a real socket.

The simulator encodes with its own `sim/wire.py`, the client decodes with
`kite/ticker_protocol.py`; both are pinned to the real fixtures, and here each
checks the other end to end (RELIABILITY.md test 3, sim encoder -> kite decoder).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hmt.kite.ticker import Ticker
from hmt.kite.ticks import Mode
from hmt.sim.simulator import Simulator
from tests.support.eventually import eventually
from tests.support.factories import INFY, RELIANCE

NIFTY_50 = 256265


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=5, heartbeat_interval=0.05) as running:
        yield running


async def test_every_mode_decodes_what_the_simulator_sent(sim: Simulator) -> None:
    """Prices pushed into the simulator arrive exactly, per mode, on both decode paths."""
    ltps: list[tuple[int, int]] = []
    full: list[object] = []
    ticker = Ticker(
        sim.ws_url,
        sim.api_key,
        sim.access_token,
        on_ltp=lambda token, ltp: ltps.append((token, ltp)),
        on_ticks=full.extend,
        reconnect_delay_ms=50,
        watchdog_s=2.0,
    )
    ticker.subscribe([INFY], Mode.FULL)
    ticker.subscribe([RELIANCE], Mode.LTP)
    ticker.subscribe([NIFTY_50], Mode.QUOTE)
    async with ticker:
        await eventually(lambda: ticker.stats().connected, within=5)
        await eventually(lambda: {t for t, _ in ltps} >= {INFY, RELIANCE, NIFTY_50}, within=5)
        ltps.clear()
        full.clear()
        sim.push_price(INFY, "1612.30")
        sim.push_price(RELIANCE, "2950.10")
        await eventually(lambda: {(INFY, 161_230), (RELIANCE, 295_010)} <= set(ltps), within=5)
    infy = [t for t in full if getattr(t, "instrument_token", None) == INFY]
    assert infy[-1].last_price == 161_230  # type: ignore[attr-defined]
    assert type(infy[-1]).__name__ == "FullTick"
    assert len(infy[-1].bids) == 5  # type: ignore[attr-defined]
    assert ticker.stats().bad_frames == {}
