"""What a transaction's commit waits for: read inside it, for tests of claim durability."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database


def watch_flush(db: Database, seen: list[tuple[bool, str]]) -> None:
    """Record, inside every transaction (and every write run as one statement,
    `Database.statement`: the claim on PostgreSQL), whether it is durable and the flush
    setting in force."""
    original, single = db.transaction, db.statement

    async def transaction(work: Callable[[AsyncConnection], Awaitable[Any]], **kwargs: Any) -> Any:
        async def watched(conn: AsyncConnection) -> Any:
            await _record(conn, kwargs)
            return await work(conn)

        return await original(watched, **kwargs)

    async def statement(work: Callable[[AsyncConnection], Awaitable[Any]], **kwargs: Any) -> Any:
        async def watched(conn: AsyncConnection) -> Any:
            await _record(conn, kwargs)
            return await work(conn)

        # Without a transaction of its own it runs as `transaction`, which records it.
        alone = db.runs_alone(durable=kwargs.get("durable", True))
        return await single(watched if alone else work, **kwargs)

    async def _record(conn: AsyncConnection, kwargs: dict[str, Any]) -> None:
        if db.dialect == "postgresql":
            setting = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar()
        else:
            setting = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
        seen.append((kwargs.get("durable", True), str(setting)))

    _watch_sqlite(db, seen)
    on_driver = db.on_driver

    async def driver(work: Callable[[Any], Awaitable[Any]], **kwargs: Any) -> Any:
        async def watched(connection: Any) -> Any:
            setting = await connection.fetchval("SHOW synchronous_commit")
            seen.append((kwargs.get("durable", True), str(setting)))
            return await work(connection)

        return await on_driver(watched, **kwargs)

    db.transaction = transaction  # type: ignore[method-assign]
    db.statement = statement  # type: ignore[method-assign]
    db.on_driver = driver  # type: ignore[method-assign]


def _watch_sqlite(db: Database, seen: list[tuple[bool, str]]) -> None:
    """`watch_flush` for SQLite's claims on the raw connection."""
    # The claim's raw path (HMT_CLAIM_STATEMENTS=raw): on the driver's own connection.
    # `inline`: on the loop's own connection (or the driver's, when it falls back).
    on_thread, on_loop = db.on_driver_thread, db.on_loop_thread

    def watching(work: Callable[[sqlite3.Connection], Any], durable: bool) -> Any:
        def watched(connection: sqlite3.Connection) -> Any:
            setting = connection.execute("PRAGMA synchronous").fetchone()[0]
            seen.append((durable, str(setting)))
            return work(connection)

        return watched

    async def driver_thread(work: Callable[[sqlite3.Connection], Any], **kwargs: Any) -> Any:
        return await on_thread(watching(work, kwargs.get("durable", True)), **kwargs)

    async def loop_thread(work: Callable[[sqlite3.Connection], Any], **kwargs: Any) -> Any:
        return await on_loop(watching(work, kwargs.get("durable", True)), **kwargs)

    db.on_driver_thread = driver_thread  # type: ignore[method-assign]
    db.on_loop_thread = loop_thread  # type: ignore[method-assign]


# SQLite's PRAGMA synchronous reads 1 for NORMAL and 2 for FULL.
NOT_FLUSHED = {"postgresql": "off", "sqlite": "1"}
FLUSHED = {"postgresql": "on", "sqlite": "2"}
