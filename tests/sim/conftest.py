"""The simulator's tests share one fixture: a simulator running on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hmt.sim.simulator import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=1, heartbeat_interval=0.05) as running:
        yield running
