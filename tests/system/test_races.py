"""RELIABILITY 7: claim races through the running system, and two engines on one database.

A crossing tick and a cancel (or an edit) are launched together, each after a
seeded random delay of up to a few milliseconds, so either may reach the
database first. Whatever the interleaving, exactly one of them wins: the
claim (and then exactly one order) or the change (and then none). The
simulator's order book is the judge. Nightly: HMT_RACE_REPS=500.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId
from hmt.kite.tags import broker_tag
from hmt.sim.simulator import Simulator
from hmt.store.records import TriggerRecord
from hmt.store.tables import gtt_orders
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.support.databases import TABLES
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_trigger
from tests.support.history_audit import audit, open_store
from tests.support.system import System, running_system

RACES = int(os.environ.get("HMT_RACE_REPS", "30"))
# Seconds of random delay before each side. The API cancel takes a loopback HTTP
# round trip, the tick a WebSocket frame: the tick waits longer so that both
# sides win some races and some claims are contested (lost by the engine).
CANCEL_JITTER = (0.012, 0.002)  # (tick, change)
EDIT_JITTER = (0.003, 0.003)
BASE, BASE_UNITS = "1000.00", 100_000
CROSSING, CROSSING_UNITS = "1015.00", 101_500
EDITED_UNITS = 110_000  # the edit moves the trigger out of the crossing price's reach


async def after(delay: float, work: Callable[[], Awaitable[Any]]) -> Any:
    await asyncio.sleep(delay)
    return await work()


async def race(
    system: System,
    rng: random.Random,
    change: Callable[[str], Awaitable[bool]],
    jitter: tuple[float, float],
) -> tuple[str, bool, int]:
    """One trigger, one crossing tick and one change at once: (id, change won, lost claims)."""
    engine = system.runtime.engine
    system.push(INFY, BASE)
    await eventually(lambda: engine.last_ltp.get(INFY) == BASE_UNITS)
    trigger_id = (await system.create(trigger_price_1="1010.00"))["id"]
    lost_before = engine.stats.lost_claims

    async def tick() -> None:
        system.push(INFY, CROSSING)

    _, changed = await asyncio.gather(
        after(rng.uniform(0, jitter[0]), tick),
        after(rng.uniform(0, jitter[1]), lambda: change(trigger_id)),
    )
    await eventually(lambda: engine.last_ltp.get(INFY) == CROSSING_UNITS)
    await engine.drain()  # every claim this tick started has finished
    return trigger_id, changed, engine.stats.lost_claims - lost_before


async def judge(system: System, results: list[tuple[str, bool, int]], label: str) -> dict[str, int]:
    """Winners per race from the rows, the events and the simulator's book; prints them."""
    tally: Counter[str] = Counter()
    for trigger_id, changed, lost in results:
        record = await system.trigger(trigger_id)
        claims = [e for e in record["events"] if e["kind"] == EventKind.CLAIMED.value]
        orders = system.orders_tagged(broker_tag(trigger_id, Leg.FIRST))
        tally["claims won"] += len(claims)
        tally["orders"] += len(orders)
        tally["change won"] += changed
        tally["contested claims lost"] += lost
        tally["winners != 1"] += (len(claims) + changed) != 1
        tally[f"{label} but ordered"] += changed and bool(orders)
        tally["placed"] += record["status"] == Status.PLACED.value
    print(
        f"races={len(results)} winners per race: claim={tally['claims won']} "
        f"{label}={tally['change won']} (of which after a contested claim lost by the "
        f"engine={tally['contested claims lost']}); races without exactly one "
        f"winner={tally['winners != 1']}; orders={tally['orders']} vs claims won="
        f"{tally['claims won']}; {label} but ordered={tally[f'{label} but ordered']}"
    )
    return tally


async def test_fire_against_cancel_has_exactly_one_winner(database_url: str) -> None:
    """A crossing tick raced with an API cancel: a claim with one order, or a cancel with none."""
    seed = random.randrange(1 << 32)
    print(f"\nRELIABILITY 7 fire vs cancel [{database_url.split(':', 1)[0]}] seed={seed}")
    rng = random.Random(seed)
    async with running_system(database_url) as system:
        system.push(INFY, BASE)
        await system.create(trigger_price_1="9999.00")  # keeps INFY subscribed throughout

        async def cancel(trigger_id: str) -> bool:
            response = await system.client.delete(f"/triggers/{trigger_id}", headers=system.auth())
            assert response.status_code in (200, 409), response.text
            return response.status_code == 200

        results = [await race(system, rng, cancel, CANCEL_JITTER) for _ in range(RACES)]
        tally = await judge(system, results, "cancelled")
    assert tally["winners != 1"] == 0
    assert tally["orders"] == tally["claims won"] == tally["placed"]
    assert tally["cancelled but ordered"] == 0


async def test_fire_against_edit_has_exactly_one_winner(database_url: str) -> None:
    """A crossing tick raced with an edit moving the price away: one order, or the new price.

    There is no PATCH route yet: the edit is `TriggerStore.update` followed by
    `Engine.refresh`, exactly what the API does for create and cancel.
    """
    seed = random.randrange(1 << 32)
    print(f"\nRELIABILITY 7 fire vs edit [{database_url.split(':', 1)[0]}] seed={seed}")
    rng = random.Random(seed)
    async with running_system(database_url) as system:
        runtime = system.runtime
        system.push(INFY, BASE)
        await system.create(trigger_price_1="9999.00")  # keeps INFY subscribed throughout

        async def edit(trigger_id: str) -> bool:
            try:
                await runtime.triggers.update(
                    "alice", trigger_id, {"trigger_price_1": EDITED_UNITS}
                )
            except IllegalTransition:  # claimed first: a fired trigger is not editable
                return False
            await runtime.engine.refresh(trigger_id)
            return True

        results = [await race(system, rng, edit, EDIT_JITTER) for _ in range(RACES)]
        tally = await judge(system, results, "edited")
        # The edits that won are armed at their new price: they fire there, once each.
        edited = [trigger_id for trigger_id, changed, _ in results if changed]
        for trigger_id in edited:
            assert (await system.trigger(trigger_id))["status"] == Status.ACTIVE.value
        system.push(INFY, "1100.00")
        for trigger_id in edited:
            record = await system.settled(trigger_id, within=30)
            assert record["triggered_price"] == "1100"
            assert len(system.orders_tagged(broker_tag(trigger_id, Leg.FIRST))) == 1
        print(f"edited triggers fired at their new price={len(edited)}/{len(edited)}")
    assert tally["winners != 1"] == 0
    assert tally["orders"] == tally["claims won"] == tally["placed"]
    assert tally["edited but ordered"] == 0


TWO_ENGINE_ROUNDS = 3
PER_ROUND = 8
# Two engines on one Kite account each keep their own 10/s throttle, so together
# they meet the broker's 429; the default backoff (1 s, doubling) outlasts its
# 1-second window, the test harness's 20 ms would not.
SHARED_KEY: dict[str, object] = {"retry_backoff_ms": 1000, "max_retries": 4}


async def test_two_engine_processes_on_one_postgresql_place_each_trigger_once(
    live_pg_url: str, tmp_path: Path
) -> None:
    """Two `hmt run` processes fire the same triggers: each is claimed and ordered once."""
    seed = random.randrange(1 << 32)
    print(f"\nRELIABILITY 7 two engines [postgresql] seed={seed}")
    database_url = live_pg_url
    async with (
        Simulator(seed=seed, heartbeat_interval=0.2) as sim,
        open_store(database_url) as store,
    ):
        await _empty(store)
        ops = (await TokenStore(store.db).issue("ops", operator=True)).token
        headers = {"Authorization": f"Bearer {ops}"}
        async with (
            engine_process(sim, database_url, tmp_path, name="a", engine_id="a", **SHARED_KEY) as a,
            engine_process(sim, database_url, tmp_path, name="b", engine_id="b", **SHARED_KEY) as b,
        ):
            await asyncio.gather(a.ready(), b.ready())
            ids: list[str] = []
            for _ in range(TWO_ENGINE_ROUNDS):
                sim.push_price(INFY, BASE)
                batch = [
                    (await store.create(make_trigger(trigger_price_1=101_000 + 5 * i))).id
                    for i in range(PER_ROUND)
                ]
                ids += batch
                # Both books hold the round's triggers (through the change feed).
                for engine in (a, b):
                    await eventually(
                        lambda engine=engine: _active(engine, headers, PER_ROUND), within=10
                    )
                sim.push_price(INFY, CROSSING)

                async def settled(batch: list[str] = batch) -> bool:
                    for trigger_id in batch:
                        record = await store.load(trigger_id)
                        if record is None or record.status not in (Status.PLACED, Status.FAILED):
                            return False
                    return True

                await eventually(settled, within=30, interval=0.02)
            stats = [await _stats(engine, headers) for engine in (a, b)]
            for engine in (a, b):
                assert await engine.stop() in (0, -signal.SIGTERM), engine.output()
            refused = sum(
                "HTTP 429" in str(line.get("error"))
                for engine in (a, b)
                for line in engine.events("order_error")
            )
        result = await audit(store, sim.orders(), ids)
        winners: Counter[int] = Counter()
        for trigger_id in ids:
            history = await store.history("alice", TriggerId(trigger_id))
            winners[sum(1 for event in history if event.kind is EventKind.CLAIMED)] += 1
    claims = sum(n * count for n, count in winners.items())
    orders = sum(1 for order in sim.orders() if order.get("tag") in _tags(ids))
    won = [s["triggered_orders"] for s in stats]
    lost = [s["lost_claims"] for s in stats]
    print(
        f"races={len(ids)} (triggers fired by both engines on the same tick); races by "
        f"number of winners={dict(winners)}; claims won by engine a/b={won[0]}/{won[1]}, "
        f"claims lost a/b={lost[0]}/{lost[1]}; orders={orders} vs claims={claims}"
    )
    print(f"final: {result.summary()}; broker 429s met and retried={refused}")
    assert result.placed == len(ids)
    assert result.duplicates == result.lost == result.unexpected == []
    assert result.wrong_order_id == result.bad_history == []
    assert winners == {1: len(ids)}
    assert orders == claims == sum(won) == len(ids)


# A request held this long at the simulator outlasts a restart of the other engine.
HANG_S = 12.0
HANGING: dict[str, object] = {"kite_timeout_ms": 30_000}  # the lease: 62 s


async def test_an_engine_restarted_while_anothers_order_hangs_leaves_that_claim_alone(
    live_pg_url: str, tmp_path: Path
) -> None:
    """A's order request hangs at the broker and B restarts meanwhile: B's recovery leaves
    A's live claim alone, so the broker gets one order and the trigger ends `placed`.

    Before claims had owners, B's recovery looked the tag up, found nothing (the
    request had not been processed yet) and sent the order a second time.
    """
    seed = random.randrange(1 << 32)
    print(f"\nRELIABILITY 7 restart during another engine's hang [postgresql] seed={seed}")
    async with (
        Simulator(seed=seed, heartbeat_interval=0.2) as sim,
        open_store(live_pg_url) as store,
        contextlib.AsyncExitStack() as stack,
    ):
        await _empty(store)
        headers = await _operator(store)
        engines = {}
        for name in ("a", "b"):
            engines[name] = await stack.enter_async_context(
                engine_process(sim, live_pg_url, tmp_path, name=name, engine_id=name, **HANGING)
            )
        await asyncio.gather(*(engine.ready() for engine in engines.values()))
        sim.push_price(INFY, BASE)
        trigger_id = (await store.create(make_trigger(trigger_price_1=101_000))).id
        for engine in engines.values():
            await eventually(lambda engine=engine: _active(engine, headers, 1), within=10)
        sim.faults.add(kind="latency", endpoint="place_order", delay=HANG_S, times=1)
        sim.push_price(INFY, CROSSING)

        async def claimed() -> str | None:
            return (await _claim(store, trigger_id))[0]

        await eventually(claimed, within=10, interval=0.01)
        owner = await claimed()
        other = "b" if owner == "a" else "a"
        assert await engines[other].stop() in (0, -signal.SIGTERM), engines[other].output()
        restarted = await stack.enter_async_context(
            engine_process(
                sim, live_pg_url, tmp_path, name=f"{other}-again", engine_id=other, **HANGING
            )
        )
        await restarted.ready()
        # The restart's recovery is over and A's request is still hanging.
        hung = await store.load(trigger_id)
        assert hung is not None
        assert hung.status is Status.TRIGGERED, "the hang ended before the restart was over"
        assert sim.orders() == []
        record = await _settled(store, trigger_id, within=HANG_S + 15)
        recovered = [e for e in restarted.events("recovered") if e.get("trigger_id") == trigger_id]
        claim = await _claim(store, trigger_id)
    orders = [o for o in sim.orders() if o.get("tag") == broker_tag(trigger_id, Leg.FIRST)]
    print(
        f"claim owner={owner}, restarted={other}; orders={len(orders)}; place requests="
        f"{sim.counters['rest_place_order']}; settled by the restarted engine={len(recovered)}"
    )
    assert record.status is Status.PLACED
    assert len(orders) == 1
    assert record.order_id == orders[0]["order_id"]
    assert sim.counters["rest_place_order"] == 1
    assert recovered == []
    assert claim == (owner, 1)


LEASED: dict[str, object] = {"kite_timeout_ms": 1000, "claim_lease_ms": 4000}


async def test_a_killed_engines_claim_is_settled_by_another_once_its_lease_expires(
    live_pg_url: str, tmp_path: Path
) -> None:
    """A is SIGKILLed between a refused request and its retry: B, which left A's live claim
    alone at its own start-up, takes it over once the lease expires and places the order."""
    seed = random.randrange(1 << 32)
    print(f"\nRELIABILITY 7 a dead engine's claim [postgresql] seed={seed}")
    async with (
        Simulator(seed=seed, heartbeat_interval=0.2) as sim,
        open_store(live_pg_url) as store,
    ):
        await _empty(store)
        headers = await _operator(store)
        async with engine_process(
            sim, live_pg_url, tmp_path, name="a", engine_id="a", retry_backoff_ms=60_000, **LEASED
        ) as a:
            await a.ready()
            sim.push_price(INFY, BASE)
            trigger_id = (await store.create(make_trigger(trigger_price_1=101_000))).id
            await eventually(lambda: _active(a, headers, 1), within=10)
            sim.faults.add(kind="error", endpoint="place_order", times=1)
            sim.push_price(INFY, CROSSING)

            async def refused() -> bool:
                kinds = [e.kind for e in await store.history("alice", TriggerId(trigger_id))]
                return EventKind.RETRY in kinds

            await eventually(refused, within=10, interval=0.01)
            async with engine_process(
                sim, live_pg_url, tmp_path, name="b", engine_id="b", **LEASED
            ) as b:
                await b.ready()
                assert (await _claim(store, trigger_id))[0] == "a", "B took a live claim"
                a.kill()
                killed = time.monotonic()
                record = await _settled(store, trigger_id, within=20)
                took = time.monotonic() - killed
                assert await b.stop() in (0, -signal.SIGTERM), b.output()
        history = await store.history("alice", TriggerId(trigger_id))
        claim = await _claim(store, trigger_id)
    sent = [e.payload for e in history if e.kind is EventKind.ORDER_SENT]
    orders = [o for o in sim.orders() if o.get("tag") == broker_tag(trigger_id, Leg.FIRST)]
    print(
        f"settled by b {took:.2f}s after A's SIGKILL (lease 4 s, sweep every 2 s); "
        f"order_sent={sent}; place requests={sim.counters['rest_place_order']}"
    )
    assert record.status is Status.PLACED
    assert len(orders) == 1
    assert record.order_id == orders[0]["order_id"]
    assert claim == ("b", 2)
    assert sent == [{"attempt": 1, "engine": "a"}, {"attempt": 2, "engine": "b"}]
    assert sim.counters["rest_place_order"] == 2
    assert took < 4.0 * 1.5 + 3.0  # a lease and a half, plus the look-up and the order


async def _claim(store: TriggerStore, trigger_id: str) -> tuple[str | None, int]:
    """(claimed_by, attempts) as stored."""
    query = select(gtt_orders.c.claimed_by, gtt_orders.c.attempts).where(
        gtt_orders.c.id == trigger_id
    )

    async def read(conn: AsyncConnection) -> tuple[str | None, int]:
        claimed_by, attempts = (await conn.execute(query)).one()
        return claimed_by, attempts

    result: tuple[str | None, int] = await store.db.transaction(read, write=False)
    return result


async def _settled(store: TriggerStore, trigger_id: str, *, within: float) -> TriggerRecord:
    async def done() -> bool:
        record = await store.load(trigger_id)
        return record is not None and record.status in (Status.PLACED, Status.FAILED)

    await eventually(done, within=within, interval=0.02)
    record = await store.load(trigger_id)
    assert record is not None
    return record


async def _operator(store: TriggerStore) -> dict[str, str]:
    ops = (await TokenStore(store.db).issue("ops", operator=True)).token
    return {"Authorization": f"Bearer {ops}"}


def _tags(ids: list[str]) -> set[str]:
    return {broker_tag(trigger_id, Leg.FIRST) for trigger_id in ids}


async def _stats(engine: EngineProcess, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=engine.url, timeout=5) as client:
        response = await client.get("/stats", headers=headers)
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats


async def _active(engine: EngineProcess, headers: dict[str, str], count: int) -> bool:
    return bool((await _stats(engine, headers))["active_triggers"] == count)


async def _empty(store: TriggerStore) -> None:
    async with store.db.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {TABLES}")
