"""v2's conditions end to end: a watched instrument, time legs, not_before, missed touches.

The simulator is Kite over loopback and the runtime is built as `hmt run` builds
it, on SQLite and on PostgreSQL. Triggers are written with the store and handed
to the engine as the API hands it a new one (`Engine.arm`). A restart is the
engine's own stop and start (POST /stop, /start): the book, the time book and the
day ranges are loaded again from the store. The outage is the simulator's scripted
one (`sim.gaps`, socket dropped and refused): no tick of the excursion reaches the
engine; a blind spot without a move is `drop_all`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hmt.core.events import EventKind
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import LegSpec, Trigger
from hmt.core.types import Direction, Leg, OnGap, Side, TriggerId
from hmt.engine.conditions import ist_day
from hmt.kite.tags import broker_tag
from hmt.store.records import TriggerRecord
from tests.support.eventually import eventually
from tests.support.factories import INFY, RELIANCE, make_trigger
from tests.support.system import System, running_system


def now() -> datetime:
    return datetime.now(UTC)


def v2(**overrides: Any) -> Trigger:
    return make_trigger(quantity=1, **overrides)


async def add(system: System, trigger: Trigger) -> Trigger:
    """Store `trigger` and arm it, as a create through the API does."""
    record = await system.runtime.triggers.create(trigger, **await listed(system, trigger))
    await system.runtime.engine.arm(record.trigger)
    return record.trigger


async def listed(system: System, trigger: Trigger) -> dict[str, Instrument | None]:
    """The instrument master's entries a create passes the store (as the API does)."""
    copy, _ = await system.runtime.instruments.copy()
    assert copy is not None
    watched = None if trigger.watch_token is None else copy.by_id[trigger.watch_token]
    return {"instrument": copy.by_id[trigger.instrument_token], "watch": watched}


async def record(system: System, trigger_id: TriggerId) -> TriggerRecord:
    return await system.runtime.triggers.get("alice", trigger_id)


async def settled(system: System, trigger_id: TriggerId) -> TriggerRecord:
    """The trigger once it is placed, failed or expired."""
    final: list[TriggerRecord] = []

    async def done() -> bool:
        final[:] = [await record(system, trigger_id)]
        return final[0].status in (Status.PLACED, Status.FAILED, Status.EXPIRED)

    await eventually(done, within=15, interval=0.02)
    return final[0]


async def kinds(system: System, trigger_id: TriggerId) -> list[EventKind]:
    return [event.kind for event in await system.runtime.triggers.history("alice", trigger_id)]


def orders_of(system: System, trigger: Trigger, leg: Leg = Leg.FIRST) -> list[dict[str, Any]]:
    return system.orders_tagged(broker_tag(trigger.id, leg))


async def seen(system: System, token: int, units: int) -> None:
    await eventually(lambda: system.runtime.engine.last_ltp.get(token) == units)


# --- a watched instrument that is not the traded one ------------------------------------


async def test_watched_instrument_fires_at_the_exact_price_both_directions(
    database_url: str,
) -> None:
    """INFY orders on RELIANCE's price: each leg fires at exactly its price, in its stated
    direction, not one tick short, and not on INFY's own price."""
    async with running_system(database_url) as system:
        system.push(RELIANCE, "1400.00")
        await add(system, v2(trigger_price_1=999_900))  # keeps INFY's own ticks coming
        falls = await add(
            system,
            v2(
                watch_token=RELIANCE,
                trigger_price_1=139_000,
                leg_specs=(LegSpec(direction=Direction.AT_OR_BELOW),),
            ),
        )
        rises = await add(
            system,
            v2(
                watch_token=RELIANCE,
                side=Side.SELL,
                trigger_price_1=141_000,
                leg_specs=(LegSpec(direction=Direction.AT_OR_ABOVE),),
            ),
        )
        system.push(RELIANCE, "1390.10")  # one tick (0.10) short of the falling leg
        system.push(RELIANCE, "1409.90")  # one tick short of the rising leg
        system.push(INFY, "1390.00")  # the traded instrument at the price: not watched
        system.push(INFY, "1410.00")
        await seen(system, INFY, 141_000)
        await seen(system, RELIANCE, 140_990)
        assert system.sim.orders() == []
        system.push(RELIANCE, "1390.00")
        bought = await settled(system, falls.id)
        system.push(RELIANCE, "1410.00")
        sold = await settled(system, rises.id)
        for done, trigger, side in ((bought, falls, "BUY"), (sold, rises, "SELL")):
            assert done.status is Status.PLACED
            (order,) = orders_of(system, trigger)
            assert (order["tradingsymbol"], order["transaction_type"]) == ("INFY", side)
            assert done.order_id == order["order_id"]
        assert bought.triggered_price == 139_000
        assert sold.triggered_price == 141_000


# --- time legs ---------------------------------------------------------------------------


def at_time(at: datetime, **overrides: Any) -> Trigger:
    return v2(trigger_price_1=0, leg_specs=(LegSpec(at=at),), **overrides)


async def test_a_time_trigger_fires_once_at_its_time(database_url: str) -> None:
    async with running_system(database_url) as system:
        at = now() + timedelta(seconds=1.5)
        trigger = await add(system, at_time(at))
        done = await settled(system, trigger.id)
        assert done.status is Status.PLACED
        assert done.triggered_at is not None
        assert done.triggered_at >= at
        assert len(orders_of(system, trigger)) == 1
        history = await system.runtime.triggers.history("alice", trigger.id)
        fired = [event for event in history if event.kind is EventKind.FIRED]
        assert len(fired) == 1
        assert fired[0].payload["cause"] == "time"
        assert trigger.id not in system.runtime.engine.book
        assert system.runtime.engine.timebook.next_at() is None


async def test_a_time_that_passed_while_stopped_fires_within_the_grace(database_url: str) -> None:
    async with running_system(database_url, time_grace_s=5) as system:
        engine = system.runtime.engine
        await engine.stop()
        at = now() + timedelta(seconds=0.3)
        trigger = at_time(at)
        await system.runtime.triggers.create(trigger, **await listed(system, trigger))
        await asyncio.sleep(1.0)  # its time passes while the engine is down
        await engine.start()
        done = await settled(system, trigger.id)
        assert done.status is Status.PLACED
        assert len(orders_of(system, trigger)) == 1


async def test_a_time_that_passed_beyond_the_grace_expires_with_a_reason(
    database_url: str,
) -> None:
    async with running_system(database_url, time_grace_s=1) as system:
        engine = system.runtime.engine
        await engine.stop()
        trigger = at_time(now() + timedelta(seconds=0.2))
        await system.runtime.triggers.create(trigger, **await listed(system, trigger))
        await asyncio.sleep(2.5)  # more than the grace after its time
        await engine.start()
        done = await settled(system, trigger.id)
        assert done.status is Status.EXPIRED
        history = await system.runtime.triggers.history("alice", trigger.id)
        assert history[-1].kind is EventKind.EXPIRED
        assert "HMT_TIME_GRACE_S" in history[-1].payload["reason"]
        assert EventKind.FIRED not in [event.kind for event in history]
        assert orders_of(system, trigger) == []


# --- not_before ---------------------------------------------------------------------------


async def test_not_before_keeps_a_trigger_unarmed_until_its_time(database_url: str) -> None:
    async with running_system(database_url) as system:
        engine = system.runtime.engine
        system.push(INFY, "1600.00")
        await add(system, v2(trigger_price_1=999_900))  # INFY's ticks come meanwhile
        not_before = now() + timedelta(seconds=1.5)
        trigger = await add(system, v2(trigger_price_1=160_500, not_before=not_before))
        system.push(INFY, "1610.00")  # holds, but the trigger is not armed yet
        await seen(system, INFY, 161_000)
        assert trigger.id not in engine.book
        assert orders_of(system, trigger) == []
        await eventually(lambda: trigger.id in engine.book)  # its timer armed it
        system.push(INFY, "1611.00")
        done = await settled(system, trigger.id)
        assert done.status is Status.PLACED
        assert done.triggered_at is not None
        assert done.triggered_at >= not_before
        assert len(orders_of(system, trigger)) == 1


# --- missed touches (RELIABILITY 19) -----------------------------------------------------


async def gap_triggers(system: System, mode: str) -> tuple[Trigger, Trigger]:
    """Two stop-losses at 1550 on INFY (one per on_gap), watched with a known day range."""
    system.push(INFY, "1600.00")
    asked = system.sim.counters["rest_ohlc"]
    fire = await add(system, v2(side=Side.SELL, trigger_price_1=155_000))
    skip = await add(system, v2(side=Side.SELL, trigger_price_1=155_000, on_gap=OnGap.SKIP))
    system.push(INFY, "1601.00")
    await seen(system, INFY, 160_100)
    if mode == "ltp":  # the baseline is read from the quote API once INFY is watched
        await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
    return fire, skip


async def outage(system: System, level: str | None = None) -> None:
    """A feed outage: with `level`, the simulator's scripted one (v2-sim: connections cut
    and refused while INFY trades out to `level` and back to 1600); without, every ticker
    connection is cut once and nothing trades meanwhile."""
    reconnects = system.runtime.feed.status().reconnects
    if level is None:
        system.sim.ticker.drop_all()
    else:
        gaps = system.sim.gaps
        plan = gaps.plan(INFY, level, seconds=1.0, back="1600.00", steps=4, socket="drop")
        await gaps.outage(plan)
    await eventually(
        lambda: (
            system.runtime.feed.status().reconnects > reconnects and system.runtime.feed.connected
        )
    )


async def report(system: System, scenario: str, fire: Trigger, skip: Trigger) -> None:
    """RELIABILITY 19's figures (docs/reliability.md): both legs were crossed while blind."""
    crossed = [fire, skip]
    noted = [t for t in crossed if await missed_touches(system, t.id)]
    print(
        f"RELIABILITY 19 {scenario}: legs crossed while blind {len(crossed)}, "
        f"fired {len(orders_of(system, fire))} (orders of the skip leg "
        f"{len(orders_of(system, skip))}), recorded {len(noted)}, "
        f"silently missed {len(crossed) - len(noted)}"
    )


async def missed_touches(system: System, trigger_id: TriggerId) -> list[dict[str, Any]]:
    history = await system.runtime.triggers.history("alice", trigger_id)
    return [dict(event.payload) for event in history if event.kind is EventKind.MISSED_TOUCH]


@pytest.mark.parametrize("mode", ["ltp", "quote"])
async def test_an_outage_crossing_a_stop_and_back_fires_once_or_is_recorded(
    database_url: str, mode: str
) -> None:
    """The price crosses the stop and returns while the feed is down: `fire` places once
    after the reconnection, `skip` places nothing and stays active; both say so."""
    async with running_system(database_url, tick_mode=mode) as system:
        fire, skip = await gap_triggers(system, mode)
        await outage(system, "1540.00")
        done = await settled(system, fire.id)
        assert done.status is Status.PLACED
        assert len(orders_of(system, fire)) == 1
        assert (await kinds(system, fire.id))[-5:] == [
            EventKind.MISSED_TOUCH,
            EventKind.FIRED,
            EventKind.CLAIMED,
            EventKind.ORDER_SENT,
            EventKind.PLACED,
        ]
        (fired_note,) = await missed_touches(system, fire.id)
        assert fired_note["on_gap"] == "fire"
        assert fired_note["blind"]["kind"] == "reconnect"
        assert fired_note["after"]["low"] == "1540"
        assert fired_note["threshold"] == "1550"
        await eventually(lambda: missed_touches(system, skip.id))
        (skipped,) = await missed_touches(system, skip.id)
        assert skipped["on_gap"] == "skip"
        assert skipped["before"]["low"] != "1540"
        assert (await record(system, skip.id)).status is Status.ACTIVE
        assert skip.id in system.runtime.engine.book
        # Another blind spot with no new low: the same crossing is not reported again.
        asked = system.sim.counters["rest_ohlc"]
        await outage(system)
        system.push(INFY, "1602.00")
        await seen(system, INFY, 160_200)
        if mode == "ltp":
            await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
        assert len(await missed_touches(system, skip.id)) == 1
        assert orders_of(system, skip) == []
        assert len(orders_of(system, fire)) == 1
        await report(system, f"outage, {mode} mode", fire, skip)


async def test_a_silent_feed_is_a_blind_spot_once_the_watchdog_notices(database_url: str) -> None:
    """The socket stays open and silent (a half-open link) while the price crosses and
    returns: the ticker's watchdog drops it, and the stall is a blind spot like a drop."""
    async with running_system(database_url) as system:
        fire, skip = await gap_triggers(system, "ltp")
        trips = system.runtime.feed.ticker.watchdog_trips
        gaps = system.sim.gaps
        plan = gaps.plan(INFY, "1540.00", seconds=6.0, back="1600.00", steps=4, socket="keep")
        await gaps.outage(plan)  # longer than the watchdog's 5 s
        done = await settled(system, fire.id)
        assert done.status is Status.PLACED
        assert system.runtime.feed.ticker.watchdog_trips > trips
        (note,) = await missed_touches(system, fire.id)
        assert note["blind"]["kind"] == "stall"
        assert len(orders_of(system, fire)) == 1
        await eventually(lambda: missed_touches(system, skip.id))
        assert orders_of(system, skip) == []
        await report(system, "stall (watchdog)", fire, skip)


async def test_a_crossing_while_the_engine_was_stopped_fires_after_the_restart(
    database_url: str,
) -> None:
    """The day range saved at stop is compared with the broker's after the restart."""
    async with running_system(database_url) as system:
        engine = system.runtime.engine
        fire, skip = await gap_triggers(system, "ltp")
        await engine.stop()  # saves the day ranges
        triggers, today = system.runtime.triggers, ist_day(now())
        assert (await triggers.day_ranges("paper", today))[INFY] == (160_100, 160_000)
        yesterday = today - timedelta(days=1)
        await triggers.save_day_ranges("paper", yesterday, {INFY: (170_000, 150_000)})
        system.push(INFY, "1540.00")
        system.push(INFY, "1600.00")
        await engine.start()
        assert await triggers.day_ranges("paper", yesterday) == {}  # only today's are kept
        done = await settled(system, fire.id)
        assert done.status is Status.PLACED
        assert len(orders_of(system, fire)) == 1
        (note,) = await missed_touches(system, fire.id)
        assert note["blind"]["kind"] == "restart"
        await eventually(lambda: missed_touches(system, skip.id))
        assert orders_of(system, skip) == []
        assert (await record(system, skip.id)).status is Status.ACTIVE
        await report(system, "restart", fire, skip)


async def test_a_day_low_set_before_the_trigger_was_armed_is_not_a_missed_touch(
    database_url: str,
) -> None:
    async with running_system(database_url) as system:
        system.push(INFY, "1540.00")  # today's low, before the trigger exists
        system.push(INFY, "1600.00")
        fire, skip = await gap_triggers(system, "ltp")
        asked = system.sim.counters["rest_ohlc"]
        await outage(system)
        await eventually(lambda: system.sim.counters["rest_ohlc"] > asked)
        system.push(INFY, "1602.00")
        await seen(system, INFY, 160_200)
        assert await missed_touches(system, fire.id) == []
        assert await missed_touches(system, skip.id) == []
        assert system.sim.orders() == []


async def test_a_tick_that_jumps_past_the_price_records_the_jump(database_url: str) -> None:
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        trigger = await add(system, v2(side=Side.SELL, trigger_price_1=155_000, on_gap=OnGap.SKIP))
        system.push(INFY, "1531.00")
        await settled(system, trigger.id)
        history = await system.runtime.triggers.history("alice", trigger.id)
        (fired,) = [event for event in history if event.kind is EventKind.FIRED]
        assert fired.payload["threshold"] == "1550"
        assert fired.payload["ltp"] == "1531"
        assert fired.payload["jump"] == "-19"
        assert fired.payload["cause"] == "price"


async def test_a_time_trigger_created_over_http_fires_once(database_url: str) -> None:
    """The whole path: a v2 body with a time leg (POST /triggers) reaches the time book."""
    async with running_system(database_url) as system:
        at = now() + timedelta(seconds=1.5)
        order = {
            "instrument_token": INFY,
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "transaction_type": "SELL",
            "quantity": 1,
            "product": "MIS",
            "order_type": "MARKET",
        }
        body = {
            "trigger_type": "single",
            "legs": [{"condition": {"at": at.isoformat()}, "orders": [order]}],
        }
        response = await system.client.post("/triggers", json=body, headers=system.auth())
        assert response.status_code == 201, response.text
        trigger_id = TriggerId(response.json()["id"])
        done = await settled(system, trigger_id)
        assert done.status is Status.PLACED
        assert done.triggered_at is not None
        assert done.triggered_at >= at
        (order_row,) = system.orders_tagged(broker_tag(trigger_id, Leg.FIRST))
        assert (order_row["transaction_type"], order_row["product"]) == ("SELL", "MIS")
