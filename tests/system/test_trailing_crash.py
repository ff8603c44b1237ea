"""Issue 14's acceptance: `hmt run` SIGKILLed in the middle of trailing, then restarted.

The engine is the real command in a child process against the simulator in this
process, on SQLite and PostgreSQL. Trailing stops (every offset kind, one beside a fixed
target) follow a rising INFY while their stops are written every 100 ms; the process is
killed right after a new high, with no handler run. Whatever the dead process last wrote
is the bound: after the restart each stop is at least as tight as that (never looser),
and when INFY then falls through every stop each trigger fires exactly once.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import httpx

from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.trailing import Offset, Trail
from hmt.core.types import Direction, Side
from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from hmt.store.trails import TrailStates
from hmt.store.triggers import TriggerStore
from tests.support.engine_process import engine_process
from tests.support.eventually import eventually
from tests.support.factories import INFY
from tests.support.history_audit import audit, open_store
from tests.support.trailing import make_trailing

TICK = 10  # INFY's 0.10 in the simulator's master


def trailing_triggers() -> list[Trigger]:
    return [
        make_trailing(Trail(Side.SELL, Offset.PRICE, 1_000, TICK), quantity=1),
        make_trailing(Trail(Side.SELL, Offset.TICKS, 150, TICK, step=5 * TICK), quantity=1),
        make_trailing(Trail(Side.SELL, Offset.BPS, 120, TICK, activation=100_500), quantity=1),
        make_trailing(
            Trail(Side.SELL, Offset.PRICE, 2_000, TICK),
            target=(200_000, Direction.AT_OR_ABOVE),
            quantity=1,
        ),
    ]


async def test_sigkill_mid_trailing_resumes_no_looser_and_fires_once(
    database_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    print(f"\ntrailing crash seed={seed}")
    rng = random.Random(seed)
    async with (
        Simulator(seed=seed, heartbeat_interval=0.2) as sim,
        open_store(database_url) as store,
    ):
        token = (await TokenStore(store.db).issue("alice")).token
        sim.push_price(INFY, "1000.00")
        triggers = [await store.create(t) for t in trailing_triggers()]
        ids = [t.id for t in triggers]
        states = TrailStates(store.db)
        price = 100_000
        async with engine_process(
            sim, database_url, tmp_path, name="killed", trail_flush_ms=100
        ) as engine:
            await engine.ready()
            # A rising market: every stop moves many times, written every 100 ms.
            for _ in range(40):
                price += TICK * rng.randint(1, 8)
                sim.push_price(INFY, f"{price / 100:.2f}")
                await asyncio.sleep(rng.uniform(0.005, 0.04))
            await eventually(lambda: _all_written(states, ids), within=15)
            price += 50 * TICK  # a new high, and killed before it can be written
            sim.push_price(INFY, f"{price / 100:.2f}")
            engine.kill()
            assert await engine.exited() == -signal.SIGKILL
        written = {key[0]: item.state for key, item in (await states.read(ids)).items()}
        print(f"written at the kill: { {k[:8]: v for k, v in written.items()} } high={price}")
        assert set(written) == set(ids)
        # While it is down INFY falls back to just above the tightest written stop: a trail
        # started afresh there would sit below it (looser); resumed, none moves.
        tightest = max(state.stop for state in written.values() if state.stop is not None)
        sim.push_price(INFY, f"{(tightest + TICK) / 100:.2f}")

        async with engine_process(sim, database_url, tmp_path, name="restarted") as restarted:
            await restarted.ready()
            async with httpx.AsyncClient(
                base_url=restarted.url, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                for trigger_id in ids:
                    record = (await client.get(f"/triggers/{trigger_id}")).json()
                    (leg,) = [leg for leg in record["legs"] if leg["condition"].get("trail")]
                    shown = leg["condition"]["trail"]["state"]
                    stop = round(float(shown["stop"]) * 100)
                    assert stop >= written[trigger_id].stop, (trigger_id, shown, written)
                    assert stop == written[trigger_id].stop  # no new high since: unchanged
                    assert shown["live"] is True
            # Down through every stop: each trigger fires once, and only once.
            sim.push_price(INFY, "950.00")
            sim.push_price(INFY, "900.00")
            await eventually(lambda: _settled(store, ids), within=30, interval=0.05)
            assert await restarted.stop() in (0, -signal.SIGTERM), restarted.output()
        result = await audit(store, sim.orders(), ids)
        print(f"final: {result.summary()}")
        assert result.duplicates == []
        assert result.lost == []
        assert result.left_triggered == []
        assert result.placed == len(ids)
        for trigger_id in ids:
            record = await store.load(trigger_id)
            assert record is not None
            assert record.status is Status.PLACED
            assert record.triggered_leg is not None


async def _all_written(states: TrailStates, ids: list[str]) -> bool:
    return len(await states.read(ids)) == len(ids)


async def _settled(store: TriggerStore, ids: list[str]) -> bool:
    for trigger_id in ids:
        record = await store.load(trigger_id)
        if record is None or record.status not in (Status.PLACED, Status.FAILED):
            return False
    return True
