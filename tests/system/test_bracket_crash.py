"""RELIABILITY 20 (brackets): kill `hmt run` between an entry's fill and arming its
exits, between two partial fills, and between the two exits; restart; count what broke.

Each cycle makes one bracket (BUY 10 INFY MIS at 1010; target 1050, stop 980) with the
simulator filling orders in two slices. Phase 1 kills the engine at `spec` while the
entry fills (failpoint `before_arm` or `after_arm`, or SIGKILL from outside once the
first slice is armed); a restart must arm the exits exactly once, grown to the whole
fill. Phase 2 kills it at `after_response` of the exit's order (the broker holds it,
the store does not know); a restart settles it, and the price then crossing the other
exit must place nothing. Figures: exits armed twice, exit quantity above the fill,
fills left unprotected, brackets with both exits placed; all must be 0.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hmt.core.brackets import Exits, exit_id
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, Product
from hmt.failpoints import EXIT_CODE
from hmt.kite.tags import broker_tag
from hmt.sim.broker import Fills
from hmt.sim.simulator import Simulator
from hmt.store.brackets import BracketRecord, BracketStore
from hmt.store.triggers import TriggerStore
from tests.support.engine_process import engine_process
from tests.support.eventually import eventually
from tests.support.factories import INFY, make_trigger
from tests.support.history_audit import open_store
from tests.support.snapshots import SqliteSnapshots

PHASE_1 = ("before_arm", "after_arm", None)  # None: SIGKILL between the two fills
SETTINGS = {"fill_sweep_ms": 200}


@dataclass
class Figures:
    crashes: int = 0
    armed_twice: int = 0  # more than one exit trigger for one bracket's fills
    over_filled: int = 0  # exits' quantity above what the entry filled
    unprotected: int = 0  # fills with no exit armed once the bracket is closed
    both_exits: int = 0  # brackets with more than one exit order at the broker
    wrong_quantity: int = 0  # the exit order's quantity differs from the fill
    brackets: list[str] = field(default_factory=list)


async def bracket_of(brackets: BracketStore, bracket_id: str) -> BracketRecord:
    return await brackets.get("alice", bracket_id)


async def wait_for(brackets: BracketStore, bracket_id: str, check: object) -> BracketRecord:
    seen: list[BracketRecord] = []

    async def ok() -> bool:
        seen[:] = [await bracket_of(brackets, bracket_id)]
        return bool(check(seen[0]))  # type: ignore[operator]

    await eventually(ok, within=30, interval=0.05)
    return seen[0]


async def cycle(
    sim: Simulator,
    store: TriggerStore,
    database_url: str,
    logs: Path,
    figures: Figures,
    name: str,
    spec: str | None,
) -> None:
    brackets = BracketStore(store)
    sim.broker.fills = Fills(parts=2)
    sim.push_price(INFY, "1000.00")
    entry = make_trigger(trigger_price_1=101_000, quantity=10, product=Product.MIS)
    await brackets.create(entry, Exits(target=105_000, stop=98_000))
    figures.brackets.append(entry.id)
    # Phase 1: a crash while the entry fills.
    async with engine_process(
        sim, database_url, logs, name=f"{name}-fill", failpoints=spec or "", **SETTINGS
    ) as crashing:
        await crashing.ready()
        sim.push_price(INFY, "1015.00")  # the entry fires; 5 of 10 fill at once
        if spec is None:
            await wait_for(brackets, entry.id, lambda b: b.armed >= 5)
            crashing.kill()
            await crashing.exited()
        else:
            assert await crashing.exited() == EXIT_CODE, crashing.output()
        figures.crashes += 1
    # The restart arms what phase 1 left, takes the second fill, then phase 2: it dies at
    # the exit's order (sent and answered, the answer not written).
    async with engine_process(
        sim, database_url, logs, name=f"{name}-restart", failpoints="after_response", **SETTINGS
    ) as crashing:
        await crashing.ready()
        await wait_for(brackets, entry.id, lambda b: b.armed >= 5)
        sim.push_price(INFY, "1016.00")  # the second slice
        await wait_for(brackets, entry.id, lambda b: b.status is Status.FILLED)
        await asyncio.sleep(0.3)  # the book takes the grown exit
        sim.push_price(INFY, "1051.00")  # the target
        assert await crashing.exited() == EXIT_CODE, crashing.output()
        figures.crashes += 1
    async with engine_process(
        sim, database_url, logs, name=f"{name}-exit-restart", **SETTINGS
    ) as up:
        await up.ready()
        exit = exit_id(entry.id, 1)

        async def settled() -> bool:
            record = await store.load(exit)
            return record is not None and record.status in (Status.PLACED, Status.FAILED)

        await eventually(settled, within=30, interval=0.05)
        sim.push_price(INFY, "975.00")  # past the stop: the oco has fired already
        await asyncio.sleep(0.5)
        assert await up.stop() in (0, -15), up.output()
    record = await bracket_of(brackets, entry.id)
    quantities = [e.trigger.quantity for e in record.exit_records]
    figures.armed_twice += len(quantities) > 1
    figures.over_filled += sum(quantities) > record.filled
    figures.unprotected += record.armed < record.filled
    tags = {
        broker_tag(e.id, leg, 0) for e in record.exit_records for leg in (Leg.FIRST, Leg.SECOND)
    }
    orders = [o for o in sim.orders() if o.get("tag") in tags]
    figures.both_exits += len(orders) > 1
    figures.wrong_quantity += sum(o["quantity"] for o in orders) != record.filled
    print(
        f"  cycle {name}: filled={record.filled} armed={record.armed} exits={quantities} "
        f"exit orders={[(o['transaction_type'], o['quantity'], o['status']) for o in orders]}"
    )


@pytest.mark.timeout(300)  # 9 `hmt run` processes per store
async def test_brackets_survive_crashes_between_fill_arm_and_exits(
    database_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    backend = database_url.split(":", 1)[0]
    print(f"\nRELIABILITY 20 (brackets) [{backend}] seed={seed}")
    figures = Figures()
    async with (
        Simulator(seed=seed, heartbeat_interval=0.2) as sim,
        open_store(database_url) as store,
    ):
        for spec in PHASE_1:
            await cycle(sim, store, database_url, tmp_path, figures, spec or "sigkill", spec)
    print(
        f"crashes={figures.crashes} brackets={len(figures.brackets)} "
        f"armed_twice={figures.armed_twice} over_filled={figures.over_filled} "
        f"unprotected={figures.unprotected} both_exits={figures.both_exits} "
        f"wrong_quantity={figures.wrong_quantity}"
    )
    assert figures.crashes == 2 * len(PHASE_1)
    assert figures.armed_twice == 0
    assert figures.over_filled == 0
    assert figures.unprotected == 0
    assert figures.both_exits == 0
    assert figures.wrong_quantity == 0


async def test_an_exit_placed_then_lost_with_its_commits_is_settled_not_placed_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Chaos seed 1583554157's story, step by step: the exit is armed, fires and is placed;
    the store then loses those commits (a snapshot from before the fill's arming is put
    back) and the restarted engine sees the fill again and arms the same exit, with the
    tags of the order already placed. It must settle it as placed, not send a second
    order under those tags."""
    snapshots = SqliteSnapshots(Path(sqlite_url.removeprefix("sqlite:///")))
    async with (
        Simulator(seed=7, heartbeat_interval=0.2) as sim,
        open_store(sqlite_url) as store,
    ):
        brackets = BracketStore(store)
        sim.push_price(INFY, "1000.00")
        entry = make_trigger(trigger_price_1=101_000, quantity=10, product=Product.MIS)
        await brackets.create(entry, Exits(target=105_000, stop=98_000))
        exit = exit_id(entry.id, 1)
        tags = {broker_tag(exit, leg, 0) for leg in (Leg.FIRST, Leg.SECOND)}
        async with engine_process(
            sim, sqlite_url, tmp_path, name="fill", failpoints="before_arm", **SETTINGS
        ) as crashing:
            await crashing.ready()
            sim.push_price(INFY, "1015.00")  # the entry fires and fills; it dies before arming
            assert await crashing.exited() == EXIT_CODE, crashing.output()
        await snapshots.take()  # the entry placed and filled, no exit yet
        async with engine_process(sim, sqlite_url, tmp_path, name="arm", **SETTINGS) as up:
            await up.ready()
            await wait_for(brackets, entry.id, lambda b: b.armed == 10)
            sim.push_price(INFY, "1051.00")  # the target: the exit is placed
            await eventually(lambda: [o["tag"] for o in sim.orders() if o["tag"] in tags])
            (first,) = [o for o in sim.orders() if o["tag"] in tags]
            up.kill()
            await up.exited()
        await snapshots.restore()  # the arming, the claim and the outcome are lost
        assert await store.load(exit) is None
        async with engine_process(sim, sqlite_url, tmp_path, name="again", **SETTINGS) as up:
            await up.ready()
            await wait_for(brackets, entry.id, lambda b: b.armed == 10)  # armed again

            async def settled() -> bool:
                record = await store.load(exit)
                return record is not None and record.status is Status.PLACED

            await eventually(settled, within=30, interval=0.05)
            sim.push_price(INFY, "1052.00")  # past the target again
            await asyncio.sleep(0.5)
            assert await up.stop() in (0, -15), up.output()
        placed = [o for o in sim.orders() if o["tag"] in tags]
        assert [o["order_id"] for o in placed] == [first["order_id"]], placed
        record = await store.load(exit)
        assert record is not None
        assert record.order_id == first["order_id"]
