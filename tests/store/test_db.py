"""Connections: URLs, SQLite durability settings, health, retries, and no half-writes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database, DatabaseUnavailable, DbState, async_url, create_engine
from hmt.store.records import user_columns
from hmt.store.tables import gtt_orders
from tests.store.conftest import Clock
from tests.support.factories import make_trigger
from tests.support.postgres import PG_HOST, PG_PORT


def test_urls_map_to_async_drivers() -> None:
    """postgresql:// and sqlite:// URLs get the asyncio drivers; others are refused."""
    assert async_url("postgresql://u:p@h:5/d") == "postgresql+asyncpg://u:p@h:5/d"
    assert async_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert async_url("sqlite:///hmt.db") == "sqlite+aiosqlite:///hmt.db"
    with pytest.raises(ValueError, match="unsupported"):
        async_url("mysql://h/d")


async def test_sqlite_runs_wal_with_full_sync(tmp_path: object) -> None:
    """Every SQLite connection is WAL, synchronous=FULL, with a busy timeout and foreign keys."""
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        async with engine.connect() as conn:
            got = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert got == ["wal", 2, 10_000, 1]


async def test_failure_midway_writes_nothing(db: Database) -> None:
    """An error after the first write of a transaction leaves no trace, and is not retried."""
    calls = 0

    async def work(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        trigger = make_trigger()
        await conn.execute(
            gtt_orders.insert().values(
                id=trigger.id,
                user_id="alice",
                status="active",
                attempts=0,
                created_at=db.clock(),
                updated_at=db.clock(),
                **user_columns(trigger),
            )
        )
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await db.transaction(work)
    assert calls == 1
    async with db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM hmt_gtt_orders"))).scalar() == 0
    assert db.health.state is DbState.OK


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def forwarding(port: int) -> AsyncIterator[None]:
    """A TCP forwarder on `port` to the PostgreSQL server: the database coming back."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_unreachable_database_then_recovery(pg_url: str, clock: Clock) -> None:
    """Down: retries, then a clear error and state `unreachable`; back: state `ok`, and the
    `reconnected` listeners hear of it once."""
    port = _free_port()
    url = pg_url.replace(f":{PG_PORT}/", f":{port}/")
    db = Database(create_engine(url), retries=2, backoff_ms=5, clock=clock)
    reconnected: list[DbState] = []
    db.reconnected.append(lambda: reconnected.append(db.health.state))

    async def select_one(conn: AsyncConnection) -> int:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())

    try:
        with pytest.raises(DatabaseUnavailable, match="after 3 attempts"):
            await db.transaction(select_one)
        assert db.health.state is DbState.UNREACHABLE
        assert db.health.reason
        assert (await db.ping()).state is DbState.UNREACHABLE
        assert reconnected == []
        async with forwarding(port):
            assert await db.transaction(select_one) == 1
            assert db.health.state is DbState.OK
            assert reconnected == [DbState.OK]
            assert (await db.ping()).state is DbState.OK
            assert reconnected == [DbState.OK]
    finally:
        await db.dispose()


async def test_killed_pooled_connection_is_retried(pg_url: str, clock: Clock) -> None:
    """A pooled connection cut by the server is replaced; the write happens exactly once, and
    the `reconnected` listeners hear of it (the server may have restarted and lost commits)."""
    name = f"hmt-db-{secrets.token_hex(3)}"
    db = Database(
        create_engine(pg_url, application_name=name), retries=2, backoff_ms=5, clock=clock
    )
    reconnected: list[bool] = []
    db.reconnected.append(lambda: reconnected.append(True))
    trigger = make_trigger()

    async def insert(conn: AsyncConnection) -> None:
        await conn.execute(
            gtt_orders.insert().values(
                id=trigger.id,
                user_id="alice",
                status="active",
                attempts=0,
                created_at=clock(),
                updated_at=clock(),
                **user_columns(trigger),
            )
        )

    try:
        await db.ping()  # leaves one idle connection in the pool
        admin = await asyncpg.connect(pg_url)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            name,
        )
        assert killed == 1
        await db.transaction(insert)
        count = await admin.fetchval(
            "SELECT count(*) FROM hmt_gtt_orders WHERE id = $1::uuid", trigger.id
        )
        await admin.execute("DELETE FROM hmt_gtt_orders WHERE id = $1::uuid", trigger.id)
        await admin.close()
    finally:
        await db.dispose()
    assert count == 1
    assert db.health.state is DbState.OK
    assert reconnected == [True]
