"""Start-up with a large book: the engine's loop keeps answering health checks during the load.

A liveness check, not a timed one: the bound on the gaps is set generously
(seconds, where a healthy load leaves milliseconds), so only a load that holds
the loop for good, or for most of the load, fails it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hmt.compose import build
from hmt.config import Settings
from hmt.engine.health import Health
from hmt.engine.service import EngineState
from hmt.sim.simulator import Simulator
from hmt.store import migrate
from hmt.store.db import create_engine
from hmt.store.tables import gtt_orders

TRIGGERS = 50_000
POLL_S = 0.005
# Generous: a load that yields between batches answers within tens of milliseconds.
BOUND_S = 2.0
INSTRUMENTS = ((408065, "INFY"), (738561, "RELIANCE"))


def _rows() -> list[dict[str, Any]]:
    """Far BUY triggers (5,000 rupees and up): nothing fires while the test runs."""
    now = datetime.now(UTC)
    rows = []
    for n in range(TRIGGERS):
        token, symbol = INSTRUMENTS[n % 2]
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "user_id": f"user{n % 50}",
                "instrument_token": token,
                "exchange": "NSE",
                "tradingsymbol": symbol,
                "trigger_type": "single",
                "transaction_type": "BUY",
                "trigger_price_1": Decimal(5000 + n % 1000),
                "quantity": 1,
                "product": "CNC",
                "order_type": "MARKET",
                "status": "active",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "price_divisor": 100,
            }
        )
    return rows


async def _fill(url: str) -> None:
    engine = create_engine(url, application_name="hmt-test")
    try:
        await migrate.upgrade(engine)
        rows = _rows()
        async with engine.begin() as conn:
            for at in range(0, len(rows), 10_000):
                await conn.execute(gtt_orders.insert(), rows[at : at + 10_000])
    finally:
        await engine.dispose()


async def test_health_is_answered_throughout_a_large_load(database_url: str) -> None:
    """While 50,000 triggers load, a health poll every 5 ms is answered within the bound
    every time, and sees the engine starting, then running with the whole book."""
    await _fill(database_url)
    async with Simulator(seed=5, heartbeat_interval=0.2) as sim:
        runtime = await build(
            Settings(
                database_url=database_url,
                broker="paper",
                kite_api_url=sim.api_url,
                kite_ws_url=sim.ws_url,
                kite_api_key=sim.api_key,
                kite_access_token=sim.access_token,
                reconnect_delay_ms=50,
            )
        )
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        answers: list[tuple[EngineState, Health]] = []
        try:
            starting = asyncio.create_task(runtime.start())
            last = loop.time()
            while not starting.done():
                await asyncio.sleep(POLL_S)
                now = loop.time()
                gaps.append(now - last)
                last = now
                answers.append((runtime.engine.state, runtime.health()))
            await starting
            assert runtime.engine.state is EngineState.RUNNING
            assert len(runtime.engine.book) == TRIGGERS
        finally:
            await runtime.close()
    during = [state for state, _ in answers if state is EngineState.STARTING]
    print(f"\nhealth answers during the load: {len(during)}, longest gap {max(gaps) * 1000:.0f} ms")
    assert len(during) >= 3, f"only {len(during)} health answers during the load"
    assert max(gaps) < BOUND_S, f"the loop was held {max(gaps):.2f} s during the load"
