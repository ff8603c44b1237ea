"""Trailing stops in the running engine (issue 14), against the simulator over loopback, on
SQLite and PostgreSQL: the bid as reference in full mode, the periodic write of moved
stops only, the resume after a restart, and missed touches after a blind spot.

Triggers are created over HTTP. A blind spot is the simulator's scripted outage
(connections cut while INFY trades out to a level and back) or the engine's own stop and
start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.trailing import TrailState
from hmt.core.types import Leg, TriggerId
from hmt.kite.tags import broker_tag
from hmt.store.trails import TrailStates
from tests.support.eventually import eventually
from tests.support.system import System, running_system

INFY = 408065
INFY_NAMED = {"instrument_token": INFY, "exchange": "NSE", "tradingsymbol": "INFY"}


async def create(system: System, trail: dict[str, Any], on_gap: str = "fire") -> TriggerId:
    body = {
        "trigger_type": "single",
        "on_gap": on_gap,
        "legs": [
            {
                "condition": {"trail": trail},
                "orders": [
                    {
                        **INFY_NAMED,
                        "transaction_type": "SELL",
                        "quantity": 1,
                        "product": "CNC",
                        "order_type": "MARKET",
                    }
                ],
            }
        ],
    }
    response = await system.client.post("/triggers", json=body, headers=system.auth())
    assert response.status_code == 201, response.text
    return TriggerId(response.json()["id"])


def state(system: System, trigger_id: TriggerId) -> TrailState | None:
    return system.runtime.engine.book.trail_state(trigger_id, Leg.FIRST)


async def written(system: System, trigger_id: TriggerId) -> TrailState | None:
    found = await TrailStates(system.runtime.db).read([trigger_id])
    item = found.get((trigger_id, 1))
    return None if item is None else item.state


async def notes(system: System, trigger_id: TriggerId) -> list[dict[str, Any]]:
    history = await system.runtime.triggers.history("alice", trigger_id)
    return [dict(e.payload) for e in history if e.kind is EventKind.MISSED_TOUCH]


def orders(system: System, trigger_id: TriggerId) -> list[dict[str, Any]]:
    return system.orders_tagged(broker_tag(trigger_id, Leg.FIRST))


@pytest.mark.parametrize(("mode", "best"), [("full", 150990), ("quote", 151000)])
async def test_full_mode_trails_the_bid_other_modes_the_ltp(
    database_url: str, mode: str, best: int
) -> None:
    """A SELL stop on the bid follows the best bid (the simulator's is one tick under the
    last price) in full mode; the same terms in quote mode (no depth) follow the LTP."""
    async with running_system(database_url, tick_mode=mode) as system:
        system.push(INFY, "1500.00")
        bid = await create(system, {"offset": "5.00", "reference": "bid"})
        ltp = await create(system, {"offset": "5.00"})
        system.push(INFY, "1510.00")
        await eventually(lambda: state(system, bid) == (best, best - 500), within=10)
        await eventually(lambda: state(system, ltp) == (151000, 150500))
        system.push(INFY, "1505.00")  # the LTP stop fires at its stop
        await eventually(lambda: len(orders(system, ltp)) == 1)
        system.push(INFY, f"{(best - 500) / 100:.2f}")  # ...the bid stop at its own
        await eventually(lambda: len(orders(system, bid)) == 1)


async def test_moved_stops_are_written_each_interval_and_resumed_after_a_restart(
    database_url: str,
) -> None:
    async with running_system(database_url, trail_flush_ms=100) as system:
        engine = system.runtime.engine
        system.push(INFY, "1500.00")
        moving = await create(system, {"kind": "ticks", "offset": 50})
        still = await create(system, {"offset": "10.00", "activation": "2000.00"})
        system.push(INFY, "1510.00")
        # The write after the tick (one at 1500.00 may come first, if its tick was seen).
        await eventually(lambda: _equals(written(system, moving), (151000, 150500)), within=5)
        assert await written(system, still) is None, "not active: nothing to write"
        before = engine.trails.written_states
        system.push(INFY, "1509.00")  # no new best: the stop stays, nothing is written
        await eventually(lambda: engine.last_ltp.get(INFY) == 150900)
        await asyncio.sleep(0.35)  # three intervals
        assert engine.trails.written_states == before
        system.push(INFY, "1520.00")
        await eventually(lambda: written(system, moving), within=5)
        await eventually(lambda: _equals(written(system, moving), (152000, 151500)), within=5)
        assert engine.trails.written_states == before + 1

        system.push(INFY, "1530.00")
        await eventually(lambda: state(system, moving) == (153000, 152500))
        await engine.stop()  # writes at shutdown, whatever the interval
        assert await written(system, moving) == (153000, 152500)
        system.push(INFY, "1524.00")  # seen by nobody; above the written stop
        await engine.start()
        assert state(system, moving) == (153000, 152500)
        assert state(system, still) == (None, None)
        system.push(INFY, "1525.00")
        await eventually(lambda: len(orders(system, moving)) == 1, within=10)
        record = await system.runtime.triggers.get("alice", moving)
        assert record.status in (Status.TRIGGERED, Status.PLACED)


async def _equals(read: Any, want: tuple[int, int]) -> bool:
    return await read == want


@pytest.mark.parametrize("on_gap", ["fire", "skip"])
async def test_a_blind_spot_whose_low_reached_the_stop(database_url: str, on_gap: str) -> None:
    """INFY trades down through the stop and back while the feed is cut: `fire` places once
    after the reconnection (at the blind spot's low), `skip` records it and stays active
    with its stop unchanged."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        asked = system.sim.counters["rest_ohlc"]
        trigger_id = await create(system, {"offset": "10.00"}, on_gap=on_gap)
        system.push(INFY, "1601.00")
        await eventually(lambda: state(system, trigger_id) == (160100, 159100))
        # LTP mode: the baseline range is read from the quote API once INFY is watched.
        await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
        await _outage(system, "1580.00", back="1595.00")
        await eventually(lambda: notes(system, trigger_id), within=15)
        (note,) = await notes(system, trigger_id)
        assert note["trailing"] is True
        assert note["threshold"] == "1591"
        assert note["after"]["low"] == "1580"
        if on_gap == "fire":
            await eventually(lambda: len(orders(system, trigger_id)) == 1, within=10)
            record = await system.runtime.triggers.get("alice", trigger_id)
            assert record.triggered_price == 158000
        else:
            assert orders(system, trigger_id) == []
            assert state(system, trigger_id) == (160100, 159100)


async def test_a_blind_spot_whose_high_rose_does_not_raise_the_stop(database_url: str) -> None:
    """INFY trades up to 1650 and back while blind: the high is not the stop's best (its
    order with the low is unknown), and nothing fired."""
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        asked = system.sim.counters["rest_ohlc"]
        trigger_id = await create(system, {"offset": "10.00"})
        system.push(INFY, "1601.00")
        await eventually(lambda: state(system, trigger_id) == (160100, 159100))
        await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
        await _outage(system, "1650.00", back="1600.00")
        await eventually(lambda: system.runtime.engine.last_ltp.get(INFY) == 160000)
        assert state(system, trigger_id) == (160100, 159100)
        assert orders(system, trigger_id) == []
        assert await notes(system, trigger_id) == []


async def _outage(system: System, level: str, *, back: str) -> None:
    reconnects = system.runtime.feed.status().reconnects
    gaps = system.sim.gaps
    plan = gaps.plan(INFY, level, seconds=1.0, back=back, steps=4, socket="drop")
    await gaps.outage(plan)
    await eventually(
        lambda: (
            system.runtime.feed.status().reconnects > reconnects and system.runtime.feed.connected
        ),
        within=15,
    )


async def test_a_stop_crossed_while_the_engine_was_stopped_fires_after_the_restart(
    database_url: str,
) -> None:
    """The engine stops (its stops and day ranges written), INFY falls through a stop and
    comes back while it is down: after the restart the resumed stop is compared with the
    day's low from the quote API, and the trigger fires once, cause gap."""
    async with running_system(database_url) as system:
        engine = system.runtime.engine
        system.push(INFY, "1600.00")
        asked = system.sim.counters["rest_ohlc"]
        trigger_id = await create(system, {"offset": "10.00"})
        system.push(INFY, "1601.00")
        await eventually(lambda: state(system, trigger_id) == (160100, 159100))
        await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
        await engine.stop()
        system.push(INFY, "1585.00")  # through the stop (1591.00) while nobody looks
        system.push(INFY, "1600.00")
        await engine.start()
        assert state(system, trigger_id) in (None, (160100, 159100))  # resumed (or fired)
        await eventually(lambda: len(orders(system, trigger_id)) == 1, within=15)
        (note,) = await notes(system, trigger_id)
        assert (note["trailing"], note["threshold"]) == (True, "1591")
        assert note["blind"]["kind"] == "restart"
        record = await system.runtime.triggers.get("alice", trigger_id)
        assert record.triggered_price == 158500
