"""RELIABILITY test 7: concurrent claims on one trigger; exactly one wins, every time."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from hmt.core.errors import IllegalTransition
from hmt.core.lifecycle import Status
from hmt.store.db import Database
from hmt.store.triggers import TriggerStore
from tests.support.claimer import claim, claim_in_process, warm
from tests.support.factories import make_trigger

CLAIMERS = 6
RACES = 40
PROCESSES = 4
PROCESS_RACES = 8


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Worker processes started (and warmed) once for every cross-process race."""
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as ex:
        list(ex.map(warm, range(PROCESSES)))
        yield ex


async def test_concurrent_claims_on_separate_connections(store: TriggerStore, db: Database) -> None:
    """Several claimers on their own connections race on one trigger: one winner per race."""
    winners = []
    for _ in range(RACES):
        trigger = make_trigger()
        await store.create(trigger)
        results = await asyncio.gather(
            *(claim(store, trigger, owner=f"engine-{n}") for n in range(CLAIMERS))
        )
        winners.append(sum(results))
        assert (await store.get("alice", trigger.id)).attempts == 1
    print(f"[{db.dialect}] races={RACES} claimers={CLAIMERS} winners per race={set(winners)}")
    assert winners == [1] * RACES


async def test_claims_from_separate_processes(
    store: TriggerStore, url: str, pool: ProcessPoolExecutor
) -> None:
    """Claimers in separate processes with their own engines: exactly one wins each race."""
    loop = asyncio.get_running_loop()
    winners = []
    for _ in range(PROCESS_RACES):
        trigger = make_trigger()
        await store.create(trigger)
        start_at = time.time() + 0.3
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, claim_in_process, url, trigger, 1, 160_000, start_at)
                for _ in range(PROCESSES)
            )
        )
        winners.append(sum(results))
    print(
        f"[{store.db.dialect}] process races={PROCESS_RACES} processes={PROCESSES} "
        f"winners per race={set(winners)}"
    )
    assert winners == [1] * PROCESS_RACES


async def test_fire_versus_cancel_and_edit(store: TriggerStore) -> None:
    """A claim racing a cancel or an edit: exactly one of them takes effect, every time."""
    outcomes = {"cancel": [0, 0], "edit": [0, 0]}  # [claims won, user changes applied]
    for i in range(RACES):
        trigger = make_trigger()
        await store.create(trigger)
        user_change = (
            store.cancel("alice", trigger.id)
            if i % 2 == 0
            else store.update("alice", trigger.id, {"trigger_price_1": 170_000})
        )
        claimed, changed = await asyncio.gather(
            claim(store, trigger),
            user_change,
            return_exceptions=True,
        )
        if isinstance(changed, BaseException) and not isinstance(changed, IllegalTransition):
            raise changed
        applied = not isinstance(changed, BaseException)
        assert claimed is not applied, "exactly one of claim and user change must win"
        record = await store.get("alice", trigger.id)
        assert (record.status is Status.TRIGGERED) is claimed
        kind = outcomes["cancel" if i % 2 == 0 else "edit"]
        kind[0] += bool(claimed)
        kind[1] += applied
    print(f"[{store.db.dialect}] races={RACES} (claims won, user changes applied): {outcomes}")
