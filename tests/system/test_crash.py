"""RELIABILITY 5: kill `hmt run` at the worst instructions, restart it, and count what broke.

The engine is the real command in a child process; the simulator stays in the
test process and is the judge of what was ordered. Each cycle arms three
triggers, starts the engine with one failpoint (or none, for a SIGKILL sent
from outside while an order is pending), pushes a price that fires all three,
lets the process die, then restarts it without failpoints and waits until
recovery has settled every trigger. Nightly: HMT_CRASH_REPS=25.

The crash campaign, the SIGKILL histories and the lost claim run against both
brokers' simulators (Kite's and Upstox's); the baskets against Kite's.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.types import Leg, OrderType, Side
from hmt.failpoints import EXIT_CODE
from hmt.kite.tags import broker_tag
from hmt.sim.simulator import Simulator
from hmt.store.tables import gtt_orders, trigger_events
from hmt.store.triggers import TriggerStore
from tests.support.baskets import make_basket, order_rows
from tests.support.brokers import BROKERS, SimSide, start_sim
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_oco
from tests.support.history_audit import audit, open_store

REPS = int(os.environ.get("HMT_CRASH_REPS", "2"))
FAILPOINTS = ("after_claim", "after_send", "after_response", "mid_event_write")
# mid_event_write's n-th hit, by repetition: 1 cuts the first claim (its fired,
# claimed and order_sent events are one statement: one hit); 5 and 4 usually cut
# an outcome write once three claims are in, else a later claim. The per-cycle
# line shows which.
MID_WRITE_HITS = (1, 5, 4)
BASE, CROSSING = "1000.00", "1015.00"
GRACEFUL = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once shut down


@dataclass
class Figures:
    crashes: int = 0
    claimed_at_crash: int = 0  # rows left `triggered` when the process died
    ordered_at_crash: int = 0  # of those, how many the broker already held
    half_written: int = 0  # rows whose events disagree with them right after a crash
    reconcile_s: list[float] = field(default_factory=list)  # restart spawn -> all settled
    recovery_s: list[float] = field(default_factory=list)  # the engine's own start-up step
    trigger_ids: list[str] = field(default_factory=list)


def cycle_triggers(side: SimSide) -> list[Trigger]:
    """Three triggers the crossing price fires at once: single MARKET, oco target, LIMIT."""
    oco = make_oco(Side.SELL, stop=90_000, target=101_000)
    return [
        side.trigger(trigger_price_1=101_000),
        side.trigger(
            trigger_type=oco.trigger_type,
            side=oco.side,
            trigger_price_1=oco.trigger_price_1,
            trigger_price_2=oco.trigger_price_2,
        ),
        side.trigger(trigger_price_1=101_000, order_type=OrderType.LIMIT, limit_price_1=101_200),
    ]


async def in_status(store: TriggerStore, ids: list[str], *statuses: Status) -> list[str]:
    found = []
    for trigger_id in ids:
        record = await store.load(trigger_id)
        if record is not None and record.status in statuses:
            found.append(trigger_id)
    return found


async def crash_cycle(
    side: SimSide,
    store: TriggerStore,
    database_url: str,
    logs: Path,
    figures: Figures,
    name: str,
    spec: str | None,
) -> None:
    """One crash (failpoint `spec`, or SIGKILL if None) and the restart that settles it."""
    sim = side.sim
    side.push(side.token, BASE)
    await side.pushed()
    ids = [(await store.create(trigger)).id for trigger in cycle_triggers(side)]
    figures.trigger_ids += ids
    if spec is None:
        # Every first attempt meets a 503 and the retry waits >= 30 s: the
        # kill lands with the rows claimed and nothing at the broker.
        sim.faults.add(kind="error", endpoint="place_order", error_type="NetworkException")
        settings: dict[str, object] = {"retry_backoff_ms": 60_000}
    else:
        settings = {}
    async with engine_process(
        sim, database_url, logs, name=f"{name}-crash", failpoints=spec or "", **settings
    ) as crashing:
        await crashing.ready()
        side.push(side.token, CROSSING)
        if spec is None:

            async def all_pending() -> bool:
                """Every trigger claimed, its first order refused, its retry recorded."""
                for trigger_id in ids:
                    record = await store.load(trigger_id)
                    if record is None or record.status is not Status.TRIGGERED:
                        return False
                    kinds = [
                        e.kind for e in await store.history(record.trigger.user_id, trigger_id)
                    ]
                    if EventKind.RETRY not in kinds:
                        return False
                return True

            await eventually(all_pending, within=20, interval=0.01)
            crashing.kill()
            code = await crashing.exited()
            assert code == -signal.SIGKILL
            sim.faults.clear()
        else:
            code = await crashing.exited()
            assert code == EXIT_CODE, f"{name}: exit {code}\n{crashing.output()}"
            assert f"failpoint {spec.split('@')[0]}: exiting" in crashing.output()
    figures.crashes += 1
    records = [record for record in [await store.load(i) for i in ids] if record is not None]
    statuses = Counter(record.status.value for record in records)
    # The database, not the engine, must have undone a transaction cut mid-way.
    figures.half_written += len((await audit(store, side.orders(), ids)).bad_history)
    tags = {str(order.get("tag")) for order in side.orders()}
    claimed = [r for r in records if r.status is Status.TRIGGERED]
    ordered = sum(1 for r in claimed if r.broker_tag in tags)
    figures.claimed_at_crash += len(claimed)
    figures.ordered_at_crash += ordered
    # Each crash landed where it was meant to: before any order, or after one was made.
    point = (spec or "sigkill").split("@")[0]
    if point in ("after_claim", "sigkill"):
        assert claimed, f"{name}: nothing claimed: {dict(statuses)}"
        assert ordered == 0, f"{name}: {ordered} ordered before the crash"
    elif point in ("after_send", "after_response"):
        assert ordered >= 1, f"{name}: {dict(statuses)}, nothing ordered"

    async with engine_process(sim, database_url, logs, name=f"{name}-restart") as restarted:
        started = time.perf_counter()

        async def settled() -> bool:
            return len(await in_status(store, ids, Status.PLACED, Status.FAILED)) == len(ids)

        await eventually(settled, within=30, interval=0.01)
        figures.reconcile_s.append(time.perf_counter() - started)
        assert await restarted.stop() in GRACEFUL, restarted.output()
    figures.recovery_s.append(recovery_seconds(restarted))
    print(
        f"  cycle {name}: exit={code} rows at crash={dict(statuses)} "
        f"(claimed with the order at the broker={ordered}) "
        f"settled {figures.reconcile_s[-1]:.2f}s after the restart"
    )


def recovery_seconds(engine: EngineProcess) -> float:
    """Application start-up -> engine started: recovery, expiry and the book's load."""
    (begin,) = engine.events("Waiting for application startup.")
    (end,) = engine.events("engine_started")
    elapsed = datetime.fromisoformat(str(end["timestamp"])) - datetime.fromisoformat(
        str(begin["timestamp"])
    )
    return elapsed.total_seconds()


@pytest.mark.timeout(300)  # 8 crashes and restarts of `hmt run`, about 100 s when quiet
@pytest.mark.parametrize("broker", BROKERS)
async def test_crash_at_every_failpoint_then_restart_settles_every_claim(
    database_url: str, tmp_path: Path, broker: str
) -> None:
    """No crash point leaves a row `triggered`, duplicates an order or loses one."""
    seed = random.randrange(1 << 32)
    backend = database_url.split(":", 1)[0]
    print(f"\nRELIABILITY 5 [{backend}, {broker}] seed={seed} reps={REPS} triggers_per_crash=3")
    figures = Figures()
    async with (
        start_sim(broker, seed) as sim,
        open_store(database_url) as store,
    ):
        side = SimSide(sim)
        for rep in range(REPS):
            for point in (*FAILPOINTS, None):
                spec = point
                if point == "mid_event_write":
                    spec = f"{point}@{MID_WRITE_HITS[rep % len(MID_WRITE_HITS)]}"
                name = f"{rep}-{spec or 'sigkill'}".replace("@", "-")
                await crash_cycle(side, store, database_url, tmp_path, figures, name, spec)
        result = await audit(store, side.orders(), figures.trigger_ids)
    resent = figures.claimed_at_crash - figures.ordered_at_crash
    print(
        f"crashes={figures.crashes} (failpoints x stores x reps = "
        f"{len(FAILPOINTS)} x 1 x {REPS} + sigkill x {REPS})"
    )
    print(
        f"claimed rows left triggered by the crashes={figures.claimed_at_crash} "
        f"(order already at the broker={figures.ordered_at_crash}, re-sent by recovery "
        f"within the 60 s window={resent})"
    )
    print(f"final: {result.summary()}")
    print(
        f"rows half-written after a crash (events disagreeing with the row)={figures.half_written}"
    )
    for label, values in (
        ("reconcile time in the engine (start-up -> engine_started)", figures.recovery_s),
        ("restart spawn -> every trigger settled (incl. interpreter start)", figures.reconcile_s),
    ):
        print(f"{label}: p50={statistics.median(values):.3f}s max={max(values):.3f}s")
    assert figures.half_written == 0
    assert result.left_triggered == []
    assert result.duplicates == []
    assert result.lost == []
    assert result.unexpected == []
    assert result.wrong_order_id == []
    assert result.bad_history == []
    assert result.placed + result.failed == result.triggers == 3 * figures.crashes


@pytest.mark.parametrize("broker", BROKERS)
async def test_history_after_a_sigkill_counts_every_request(
    database_url: str, tmp_path: Path, broker: str
) -> None:
    """SIGKILLed with a request unanswered (then: between a refused request and its retry),
    restarted: each request the simulator received is its own `order_sent`, and `attempts`
    equals their number.

    The restart has no HMT_ENGINE_ID: the derived id is the same, so it settles its own
    claim at once.
    """
    cases = {
        # The OMS takes the order and never answers: killed with the answer outstanding.
        "unanswered": (
            {"kind": "never_answer", "endpoint": "place_order", "times": 1},
            [EventKind.ORDER_SENT, EventKind.RECONCILED, EventKind.PLACED],
        ),
        # Refused (503) and killed in the retry's backoff: recovery sends the second request.
        "refused": (
            {"kind": "error", "endpoint": "place_order", "times": 1},
            [EventKind.ORDER_SENT, EventKind.RETRY, EventKind.ORDER_SENT, EventKind.PLACED],
        ),
    }
    async with (
        start_sim(broker, random.randrange(1 << 32)) as sim,
        open_store(database_url) as store,
    ):
        side = SimSide(sim)
        for name, (fault, after_claim) in cases.items():
            side.push(side.token, BASE)
            await side.pushed()
            trigger = await store.create(side.trigger(trigger_price_1=101_000))
            before = side.place_requests()
            async with engine_process(
                sim, database_url, tmp_path, name=f"{name}-killed", retry_backoff_ms=60_000
            ) as engine:
                await engine.ready()
                sim.faults.add(**fault)
                side.push(side.token, CROSSING)

                async def pending(
                    trigger_id: str = trigger.id, before: int = before, name: str = name
                ) -> bool:
                    """The request reached the simulator and its order_sent is stored."""
                    kinds = [e.kind for e in await store.history("alice", trigger_id)]
                    received = side.place_requests() - before
                    return (
                        received == 1
                        and EventKind.ORDER_SENT in kinds
                        and (name == "unanswered" or EventKind.RETRY in kinds)
                    )

                await eventually(pending, within=15, interval=0.01)
                engine.kill()
                assert await engine.exited() == -signal.SIGKILL
            sim.faults.clear()
            async with engine_process(
                sim, database_url, tmp_path, name=f"{name}-restarted"
            ) as restarted:
                await eventually(
                    lambda trigger_id=trigger.id: in_status(store, [trigger_id], Status.PLACED),
                    within=30,
                    interval=0.02,
                )
                assert await restarted.stop() in GRACEFUL, restarted.output()
            record = await store.load(trigger.id)
            history = await store.history("alice", trigger.id)
            received = side.place_requests() - before
            sent = [e for e in history if e.kind is EventKind.ORDER_SENT]
            print(
                f"\n{name}: requests received={received} order_sent={len(sent)} "
                f"attempts={record.attempts if record else None} "
                f"history={[e.kind.value for e in history]}"
            )
            assert record is not None
            assert record.status is Status.PLACED
            assert [e.kind for e in history] == [
                EventKind.CREATED,
                EventKind.FIRED,
                EventKind.CLAIMED,
                *after_claim,
            ]
            assert record.attempts == len(sent) == received
            assert [e.payload["attempt"] for e in sent] == list(range(1, received + 1))
            assert len(side.orders_tagged(str(record.broker_tag))) == 1


async def lose_the_claim(store: TriggerStore, trigger_id: str) -> None:
    """Put the row back as it was before its claim, as if the claim's commit (and everything
    after it) never reached the disk: `active`, no tag, no owner, only `created` in history."""

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(
            update(gtt_orders)
            .where(gtt_orders.c.id == trigger_id)
            .values(
                status=Status.ACTIVE.value,
                order_id=None,
                broker_tag=None,
                triggered_leg=None,
                triggered_price=None,
                triggered_at=None,
                claimed_by=None,
                claim_expires_at=None,
                attempts=0,
            )
        )
        await conn.execute(
            delete(trigger_events).where(
                trigger_events.c.trigger_id == trigger_id,
                trigger_events.c.kind != EventKind.CREATED.value,
            )
        )

    await store.db.transaction(work)


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_claim_lost_with_the_database_is_reconciled_not_sent_again(
    database_url: str, tmp_path: Path, broker: str
) -> None:
    """The claim's commit is lost after its order left (the row `active` again): the restart
    reads the broker's order book before anything fires and settles it as placed, so the next
    crossing price makes no second order; a trigger armed alongside still fires."""
    async with (
        start_sim(broker, random.randrange(1 << 32)) as sim,
        open_store(database_url) as store,
    ):
        side = SimSide(sim)
        side.push(side.token, BASE)
        await side.pushed()
        lost = await store.create(side.trigger(trigger_price_1=101_000))
        async with engine_process(sim, database_url, tmp_path, name="first") as first:
            await first.ready()
            side.push(side.token, CROSSING)
            await eventually(lambda: in_status(store, [lost.id], Status.PLACED), within=15)
            assert await first.stop() in GRACEFUL, first.output()
        (order,) = side.orders()
        await lose_the_claim(store, lost.id)
        side.push(side.token, BASE)
        await side.pushed()
        control = await store.create(side.trigger(trigger_price_1=101_000))
        async with engine_process(sim, database_url, tmp_path, name="second") as second:
            await second.ready()
            side.push(side.token, CROSSING)
            # The control fires on the same price the lost one would have fired on.
            await eventually(lambda: in_status(store, [control.id], Status.PLACED), within=15)
            assert await second.stop() in GRACEFUL, second.output()
        record = await store.load(lost.id)
        assert record is not None
        assert (record.status, record.order_id) == (Status.PLACED, order["order_id"])
        assert [e.kind for e in await store.history("alice", lost.id)] == [
            EventKind.CREATED,
            EventKind.FIRED,
            EventKind.CLAIMED,
            EventKind.ORDER_SENT,
            EventKind.RECONCILED,
            EventKind.PLACED,
        ]
        assert [o.get("tag") for o in side.orders()].count(record.broker_tag) == 1
        assert len(side.orders()) == 2
        result = await audit(store, side.orders(), [lost.id, control.id])
        assert (result.duplicates, result.lost, result.bad_history) == ([], [], [])


async def basket_settled(store: TriggerStore, trigger_id: str) -> bool:
    return bool(await in_status(store, [trigger_id], Status.PLACED, Status.FAILED))


@pytest.mark.parametrize("crash", ["between_orders", "sigkill"])
async def test_a_basket_killed_between_orders_is_finished_without_resending(
    database_url: str, tmp_path: Path, crash: str
) -> None:
    """RELIABILITY 18: a 20-order basket whose engine dies mid-basket — at the failpoint
    `between_orders` (after the fifth order's outcome is written, before the sixth), or
    SIGKILLed from outside while its orders are on their way — is finished by the
    restarted engine's recovery: every tag at the simulator exactly once, no order
    placed before the crash sent again, every order placed, the trigger placed."""
    size = 20
    async with (
        Simulator(seed=random.randrange(1 << 32), heartbeat_interval=0.2) as sim,
        open_store(database_url) as store,
    ):
        sim.push_price(INFY, BASE)
        trigger = (await store.create(make_basket(size))).trigger
        tags = [broker_tag(trigger.id, Leg.FIRST, k) for k in range(size)]
        failpoints = "between_orders@5" if crash == "between_orders" else ""
        async with engine_process(
            sim, database_url, tmp_path, name=f"basket-{crash}", failpoints=failpoints
        ) as crashing:
            await crashing.ready()
            if crash == "sigkill":
                # Each order answered after 0.2 s: the kill lands with the basket half done.
                sim.faults.add(kind="latency", endpoint="place_order", delay=0.2)
            sim.push_price(INFY, CROSSING)
            if crash == "sigkill":
                await eventually(lambda: len(sim.orders()) >= 7, within=20, interval=0.01)
                crashing.kill()
                assert await crashing.exited() == -signal.SIGKILL
                sim.faults.clear()
            else:
                code = await crashing.exited()
                assert code == EXIT_CODE, crashing.output()
                assert "failpoint between_orders: exiting" in crashing.output()
        at_crash = Counter(str(o.get("tag")) for o in sim.orders())
        before = [tag for tag in tags if at_crash[tag]]
        record = await store.load(trigger.id)
        assert record is not None
        assert record.status is Status.TRIGGERED
        async with engine_process(
            sim, database_url, tmp_path, name=f"basket-{crash}-restart"
        ) as restarted:
            await eventually(lambda: basket_settled(store, trigger.id), within=30, interval=0.02)
            assert await restarted.stop() in GRACEFUL, restarted.output()
        book = Counter(str(o.get("tag")) for o in sim.orders())
        per_tag = [book[tag] for tag in tags]
        rows = await order_rows(store, trigger.id)
        record = await store.load(trigger.id)
        assert record is not None
        history = await store.history("alice", trigger.id)
        wrong = [r.position for r in rows if r.status != "placed"]
        print(
            f"\nRELIABILITY 18 [{database_url.split(':', 1)[0]}] {crash}: orders at the sim "
            f"at the crash {len(before)}, after recovery {sum(per_tag)}; orders per tag "
            f"{dict(Counter(per_tag))}; orders never sent {per_tag.count(0)}; wrong statuses "
            f"{len(wrong) + (record.status is not Status.PLACED)}; attempts {record.attempts}"
        )
        if crash == "between_orders":
            assert len(before) == 5
        assert per_tag == [1] * size
        assert wrong == []
        assert len(rows) == size
        assert record.status is Status.PLACED
        assert record.order_id == next(
            o["order_id"] for o in sim.orders() if o.get("tag") == tags[0]
        )
        sent = sum(e.kind is EventKind.ORDER_SENT for e in history)
        assert sent == record.attempts == sum(r.attempts for r in rows)
