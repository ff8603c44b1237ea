"""SQLite's writers of one process take turns at a gate, the claims first
(HMT_SQLITE_WRITERS=queued, `hmt.store.writegate`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database, _own_file, create_engine
from hmt.store.writegate import WriteGate, gate_for
from tests.support.eventually import eventually


async def _waiting(gate: WriteGate, *, urgent: bool, order: list[str], name: str) -> None:
    await gate.acquire(urgent=urgent)
    order.append(name)
    gate.release()


async def _until_waiting(gate: WriteGate, count: int) -> None:
    await eventually(lambda: gate.waited >= count, within=5)


async def test_an_urgent_writer_goes_before_the_others_waiting() -> None:
    gate, order = WriteGate(timeout=5), []
    await gate.acquire(urgent=False)
    others = [
        asyncio.create_task(_waiting(gate, urgent=False, order=order, name=f"write{n}"))
        for n in range(3)
    ]
    await _until_waiting(gate, 3)
    claim = asyncio.create_task(_waiting(gate, urgent=True, order=order, name="claim"))
    await _until_waiting(gate, 4)
    gate.release()
    await asyncio.gather(claim, *others)
    assert order == ["claim", "write0", "write1", "write2"]
    await gate.acquire(urgent=False)  # free again: taken at once
    assert gate.waited == 4


async def test_the_turn_passes_between_event_loops_of_two_threads() -> None:
    """The engine's loop and the API's (its own thread) share one gate."""
    gate = WriteGate(timeout=5)
    await gate.acquire(urgent=False)
    got = threading.Event()

    def api_thread() -> None:
        async def write() -> None:
            await gate.acquire(urgent=False)
            got.set()
            gate.release()

        asyncio.run(write())

    thread = threading.Thread(target=api_thread)
    thread.start()
    await _until_waiting(gate, 1)
    assert not got.is_set()
    gate.release()
    await asyncio.to_thread(thread.join, 5)
    assert got.is_set()
    await gate.acquire(urgent=True)  # released by the other thread


async def test_a_writer_cancelled_while_waiting_leaves_the_queue() -> None:
    gate, order = WriteGate(timeout=5), []
    await gate.acquire(urgent=False)
    gone = asyncio.create_task(_waiting(gate, urgent=False, order=order, name="gone"))
    stays = asyncio.create_task(_waiting(gate, urgent=False, order=order, name="stays"))
    await _until_waiting(gate, 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    gate.release()
    await stays
    assert order == ["stays"]


async def test_a_turn_handed_to_a_writer_as_it_is_cancelled_goes_to_the_next() -> None:
    gate, order = WriteGate(timeout=5), []
    await gate.acquire(urgent=False)
    first = asyncio.create_task(_waiting(gate, urgent=False, order=order, name="first"))
    second = asyncio.create_task(_waiting(gate, urgent=False, order=order, name="second"))
    await _until_waiting(gate, 2)
    gate.release()  # handed to `first`, which has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert order == ["second"]


async def test_a_writer_waits_no_longer_than_the_timeout() -> None:
    gate = WriteGate(timeout=0.05)
    await gate.acquire(urgent=False)
    with pytest.raises(TimeoutError):
        await gate.acquire(urgent=True)
    gate.release()
    await gate.acquire(urgent=False)  # nobody left queued: free


def test_one_gate_per_database_file(tmp_path: Path) -> None:
    path = _own_file(create_engine(f"sqlite:///{tmp_path}/g.db"))
    assert path is not None
    assert gate_for(path, 1) is gate_for(str(tmp_path / "." / "g.db"), 1)
    assert _own_file(create_engine("sqlite:///:memory:")) is None
    assert _own_file(create_engine("sqlite:///file:x.db?uri=true")) is None  # a URI filename


@pytest.fixture
async def queued(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    url = f"sqlite:///{tmp_path}/q.db"
    api = Database(create_engine(url), queued_writers=True)
    engine = Database(
        create_engine(url),
        queued_writers=True,
        deferred=create_engine(url, deferred_flush=True),
    )
    await api.transaction(_table)
    yield api, engine
    await api.dispose()
    await engine.dispose()


async def _table(conn: AsyncConnection) -> None:
    await conn.exec_driver_sql("CREATE TABLE t (name TEXT)")


async def test_a_claim_waits_for_the_writer_in_hand_only(
    queued: tuple[Database, Database],
) -> None:
    """Behind a long API write, three more queued, the engine's claim (a deferred write on
    the driver's thread) is written next; without the gate it would race them all."""
    api, engine = queued
    assert api.gate is not None
    assert api.gate is engine.gate
    go = asyncio.Event()

    async def long_write(conn: AsyncConnection) -> None:
        await conn.exec_driver_sql("INSERT INTO t VALUES ('long')")
        await go.wait()

    def named(name: str) -> Callable[[AsyncConnection], Awaitable[None]]:
        async def work(conn: AsyncConnection) -> None:
            await conn.exec_driver_sql(f"INSERT INTO t VALUES ('{name}')")

        return work

    holding = asyncio.create_task(api.transaction(long_write))
    await _until_held(api.gate)
    writes = [asyncio.create_task(api.transaction(named(f"write{n}"))) for n in range(3)]
    await _until_waiting(api.gate, 3)
    claim = asyncio.create_task(
        engine.on_driver_thread(
            lambda c: c.execute("INSERT INTO t VALUES ('claim')").close(), durable=False
        )
    )
    await _until_waiting(api.gate, 4)
    go.set()
    await asyncio.gather(holding, claim, *writes)

    async def names(conn: AsyncConnection) -> list[str]:
        return list((await conn.exec_driver_sql("SELECT name FROM t ORDER BY rowid")).scalars())

    assert await api.transaction(names, write=False) == [
        "long",
        "claim",
        "write0",
        "write1",
        "write2",
    ]


async def _until_held(gate: WriteGate) -> None:
    await eventually(lambda: gate._held, within=5)


async def test_reads_and_busy_wait_databases_take_no_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    busy = Database(create_engine(url))
    try:
        assert busy.gate is None
        await busy.transaction(_table)
    finally:
        await busy.dispose()
    reader = Database(create_engine(url), queued_writers=True)
    try:
        assert reader.gate is not None
        await reader.gate.acquire(urgent=False)  # a writer holds it: reads go on
        assert await reader.transaction(_count, write=False) == 0
        reader.gate.release()
    finally:
        await reader.dispose()


async def _count(conn: AsyncConnection) -> int:
    return int((await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one())


async def test_an_inline_claim_behind_a_writer_of_this_process_queues_first(
    queued: tuple[Database, Database],
) -> None:
    """The claim on the loop's own connection (`inline`) never waits on the loop: with
    the gate held it joins the queue on aiosqlite's thread, ahead of the writers there."""
    api, engine = queued
    assert api.gate is not None
    go = asyncio.Event()

    async def long_write(conn: AsyncConnection) -> None:
        await conn.exec_driver_sql("INSERT INTO t VALUES ('long')")
        await go.wait()

    async def write(conn: AsyncConnection) -> None:
        await conn.exec_driver_sql("INSERT INTO t VALUES ('write')")

    holding = asyncio.create_task(api.transaction(long_write))
    await _until_held(api.gate)
    later = asyncio.create_task(api.transaction(write))
    await _until_waiting(api.gate, 1)
    fallbacks = engine.loop_fallbacks
    claim = asyncio.create_task(
        engine.on_loop_thread(
            lambda c: c.execute("INSERT INTO t VALUES ('claim')").close(), durable=False
        )
    )
    await _until_waiting(api.gate, 2)
    assert engine.loop_fallbacks == fallbacks + 1
    go.set()
    await asyncio.gather(holding, later, claim)

    async def names(conn: AsyncConnection) -> list[str]:
        return list((await conn.exec_driver_sql("SELECT name FROM t ORDER BY rowid")).scalars())

    assert await api.transaction(names, write=False) == ["long", "claim", "write"]
    assert api.gate.try_acquire()  # every turn given back
    api.gate.release()
