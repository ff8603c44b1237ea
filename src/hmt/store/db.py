"""Connecting: the async engine for either backend, its settings, health and retries.

SQLite runs in WAL mode with `synchronous=FULL`: every commit is durable before
it returns. A transaction run with `durable=False` (the engine's claim, with
HMT_CLAIM_DURABILITY=async) commits without waiting for the disk: on a pool
of its own made with `deferred_flush` (PostgreSQL connections with
`synchronous_commit = off`, SQLite ones with `synchronous=NORMAL`), or without
one, on the main pool with `SET LOCAL synchronous_commit = off` inside it
(PostgreSQL) or `synchronous=NORMAL` on its connection for that transaction
(SQLite). In WAL mode such a commit is not fsynced; the database stays
consistent, but a crash of the server or its host can lose it. The next durable
commit on either store flushes the log up to itself, earlier commits included, so
such a commit is at risk only until the next durable one. A lost claim puts a
trigger whose order may have left back to `active`: the engine's reconciliation
against the broker's order book settles it (docs/engine.md, "Claims that do not
wait for the disk"). Write transactions start with `BEGIN IMMEDIATE`, so two
writers queue on the lock (up to `busy_timeout`) instead of one failing
mid-transaction. The engine's claim on SQLite (`on_loop_thread`) is the one writer
that never queues: it runs on the event loop's thread on a connection of its own
with no busy timeout, and hands itself to the pool's path when the lock is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hmt.core.errors import HmtError
from hmt.store.writegate import WriteGate, gate_for

log = structlog.get_logger("hmt.store.db")
T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_BUSY = 5  # SQLITE_BUSY: the primary code of every SQLITE_BUSY_* error
_IMMEDIATE = "hmt_immediate"
_DEFERRED_FLUSH = "hmt_deferred_flush"  # a commit that need not wait for the disk
_SYNCHRONOUS = "hmt_synchronous"  # a SQLite connection's current `synchronous` level


class DatabaseUnavailable(HmtError):
    """The database could not be reached after every retry; nothing was written."""


class CommitUnknown(HmtError):
    """The connection failed during COMMIT: the change may or may not be durable.

    Never retried blindly: a claim that did commit would then look lost. The
    caller re-reads the row (or leaves it to start-up reconciliation).
    """


class DbState(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class DbHealth:
    """What the engine reports in /health about its database."""

    state: DbState
    since: datetime
    reason: str | None = None


def async_url(url: str) -> str:
    """Map `postgresql://` and `sqlite://` URLs to their asyncio drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def create_engine(
    url: str,
    *,
    application_name: str = "hmt",
    pool_size: int = 5,
    echo: bool = False,
    deferred_flush: bool = False,
) -> AsyncEngine:
    """An async engine for `url` with hmt's connection settings applied.

    `deferred_flush`: every connection's commits do not wait for the disk
    (PostgreSQL `synchronous_commit = off`, SQLite `synchronous=NORMAL`): the
    pool `Database` runs its `durable=False` transactions on, so they need no
    statement of their own to say so.
    """
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # The claims' pool: every user of it ends its own transaction (SQLAlchemy's
            # `transaction`, `on_driver_thread` on the driver's thread), so the pool's
            # ROLLBACK on every return would only be one more hand-off to aiosqlite's
            # thread per claim (issue 12); `_sqlite_end_open` rolls back only a
            # connection that comes back with a transaction open.
            pool_reset_on_return=None if deferred_flush else "rollback",
        )
        connect = _sqlite_connect_deferred if deferred_flush else _sqlite_connect
        event.listen(engine.sync_engine, "connect", connect)
        if deferred_flush:
            event.listen(engine.sync_engine.pool, "reset", _sqlite_end_open)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    server_settings = {"application_name": application_name}
    if deferred_flush:
        server_settings["synchronous_commit"] = "off"
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        connect_args={"server_settings": server_settings},
    )


def _sqlite_connect(dbapi_connection: Any, record: Any, *, level: str = "FULL") -> None:
    # Take transaction control from the driver, so BEGIN is ours (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        f"synchronous={level}",
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
    record.info[_SYNCHRONOUS] = level


def _sqlite_connect_deferred(dbapi_connection: Any, record: Any) -> None:
    _sqlite_connect(dbapi_connection, record, level="NORMAL")


def _sqlite_end_open(dbapi_connection: Any, record: Any, state: Any) -> None:
    # `in_transaction` is read on this thread (no hand-off); only an open one costs one.
    if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    # Every write transaction states its level (`synchronous` cannot change inside
    # one), so a connection a deferred-flush claim used goes back to FULL for the
    # next writer that the pool hands it to, whatever happened to the claim.
    if options.get(_IMMEDIATE, False):
        level = "NORMAL" if options.get(_DEFERRED_FLUSH, False) else "FULL"
        info = connection.connection.info
        if info.get(_SYNCHRONOUS) != level:
            connection.exec_driver_sql(f"PRAGMA synchronous={level}")
            info[_SYNCHRONOUS] = level
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")


def is_transient(error: BaseException) -> bool:
    """Whether `error` is the connection failing (worth a retry), not the statement."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
        if isinstance(error, exc.OperationalError) and "locked" in str(original).lower():
            return True  # SQLite still busy after busy_timeout
        cause = getattr(original, "__cause__", None) or original
        return isinstance(cause, _CONNECTION_FAILURES) or (isinstance(error, exc.InterfaceError))
    # The driver's own error (the claim's raw path): the same classes as behind SQLAlchemy's.
    return isinstance(error, _CONNECTION_FAILURES)


_CONNECTION_FAILURES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
)


class Database:
    """An engine plus the state of its connection and a retrying transaction runner."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retries: int = 2,
        backoff_ms: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deferred: AsyncEngine | None = None,
        queued_writers: bool = False,
    ) -> None:
        """`deferred`: an engine made with `deferred_flush` for `durable=False` writes; without
        one they run on `engine`, saying so in each transaction (one statement more).
        `queued_writers` (SQLite, HMT_SQLITE_WRITERS=queued): this process's writers take
        turns at `writegate.py`'s gate, claims first, instead of racing in SQLite's busy
        handler."""
        self.engine = engine
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.clock = clock
        self.health = DbHealth(DbState.OK, clock())
        file = _own_file(engine)
        self.gate: WriteGate | None = (
            gate_for(file, SQLITE_BUSY_TIMEOUT_MS / 1000)
            if file is not None and queued_writers
            else None
        )
        self._writer = engine.execution_options(**{_IMMEDIATE: True})
        self._deferred = (deferred or engine).execution_options(
            **{_IMMEDIATE: True, _DEFERRED_FLUSH: True}
        )
        self._deferred_pool = deferred
        # Called (synchronously) when the database answers again after being unreachable.
        self.reconnected: list[Callable[[], None]] = []
        # `on_loop_thread`'s connection: the file it opens (None: the pool's path only),
        # the connection once open, the thread that opened it, its `synchronous` level.
        self._loop_file = file
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_thread: int | None = None
        self._loop_info: dict[Any, Any] = {}
        # Claims `on_loop_thread` handed to the pool's path (the write lock was held).
        self.loop_fallbacks = 0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        self._close_loop_connection()
        await self.engine.dispose()
        if self._deferred_pool is not None:
            await self._deferred_pool.dispose()

    async def transaction(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        write: bool = True,
        durable: bool = True,
    ) -> T:
        """Run `work` in one transaction, retrying when the connection fails before COMMIT.

        A failure before COMMIT rolled everything back, so a retry cannot write
        twice; a failure during COMMIT raises `CommitUnknown` and is not retried.
        After the last retry, `DatabaseUnavailable` names the reason.
        `durable=False` (a write): the commit returns without waiting for the
        disk (see the module's docstring); the next durable commit covers it.
        """
        deferred = write and not durable
        engine = self._deferred if deferred else self._writer if write else self.engine
        # Without a pool of its own, a deferred commit says so in its transaction.
        postgres = deferred and self._deferred_pool is None and self.dialect == "postgresql"
        for attempt in range(self.retries + 1):
            try:
                async with self._turn(write, urgent=deferred), engine.connect() as conn:
                    await conn.begin()
                    if postgres:
                        await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    result = await work(conn)
                    try:
                        await conn.commit()
                    except Exception as error:
                        if is_transient(error):
                            self._unreachable(error)
                            raise CommitUnknown(
                                f"commit outcome unknown: {_reason(error)}"
                            ) from error
                        raise
            except Exception as error:
                await self._before_retry(error, attempt)
            else:
                self._ok()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def _turn(self, write: bool, *, urgent: bool) -> AsyncIterator[None]:
        """A write's turn at the gate (`queued_writers`), held until its COMMIT is done."""
        if self.gate is None or not write:
            yield
            return
        await self.gate.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.gate.release()

    async def _before_retry(self, error: Exception, attempt: int) -> None:
        """A failure before anything could commit: re-raise it unless transient; after the
        last attempt `DatabaseUnavailable` names the reason; else wait out the backoff.
        """
        if not is_transient(error):
            raise error
        self._unreachable(error)
        if attempt == self.retries:
            raise DatabaseUnavailable(
                f"database unreachable after {attempt + 1} attempts: {_reason(error)}"
            ) from error
        await asyncio.sleep(_backoff(self.backoff_ms, attempt))

    def runs_alone(self, *, durable: bool) -> bool:
        """Whether `statement` runs without a transaction (else it runs as `transaction`)."""
        return durable or self._deferred_pool is not None

    async def statement(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, durable: bool = True
    ) -> T:
        """Run `work`, one write statement, on its own: no BEGIN or COMMIT of ours (autocommit).

        One round trip instead of four: the claim's path on PostgreSQL (issue 12),
        whose one statement is atomic by itself. Failing to connect is retried as in
        `transaction`; a connection failing once the statement is on its way raises
        `CommitUnknown` (it may have committed). A deferred write without a pool of
        its own runs as `transaction` does (its `SET LOCAL` needs a transaction).
        """
        if not self.runs_alone(durable=durable):
            return await self.transaction(work, durable=False)
        engine = self._deferred_pool if not durable else self.engine
        assert engine is not None
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        for attempt in range(self.retries + 1):
            gate = self.gate
            try:
                if gate is not None:  # nothing is sent before it: a timeout is retried
                    await gate.acquire(urgent=not durable)
            except Exception as error:
                await self._before_retry(error, attempt)
                continue
            try:
                conn = await engine.connect()
            except Exception as error:
                if gate is not None:
                    gate.release()
                await self._before_retry(error, attempt)
                continue
            try:
                result = await work(conn)
                await conn.commit()  # ends SQLAlchemy's own bookkeeping; nothing is sent
            except Exception as error:
                if is_transient(error):
                    self._unreachable(error)
                    raise CommitUnknown(f"commit outcome unknown: {_reason(error)}") from error
                raise
            finally:
                if gate is not None:
                    gate.release()
                await conn.close()
            self._ok()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def on_driver_thread(
        self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True
    ) -> T:
        """SQLite: `work` on the driver's own connection, in one write transaction, all of
        it (BEGIN IMMEDIATE, `work`, COMMIT) in one call on aiosqlite's thread.

        The claim's raw path (issue 12): every driver call through SQLAlchemy is a
        hand-off to that thread and back (some 13 for a claim); this is one. The rules
        are `transaction`'s: the connection's `synchronous` level set as `_sqlite_begin`
        sets it, a failure before COMMIT rolled back and retried if transient, a
        transient failure of the COMMIT itself `CommitUnknown`. The driver's errors are
        given SQLAlchemy's classes first, so they are classified exactly as there.
        """
        return await self._on_driver_thread(work, durable=durable, first=0)

    async def _on_driver_thread(
        self, work: Callable[[sqlite3.Connection], T], *, durable: bool, first: int
    ) -> T:
        """`on_driver_thread` from attempt `first` on (`on_loop_thread` may have used some)."""
        level = "FULL" if durable else "NORMAL"
        engine = self.engine if durable else self._deferred_pool or self.engine
        for attempt in range(first, self.retries + 1):
            try:
                conn = await engine.connect()
            except Exception as error:
                await self._before_retry(error, attempt)
                continue
            try:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                run = partial(_sqlite_transaction, work, raw.info, level)
                # aiosqlite runs a function on its thread only through `_execute` (its
                # own methods are each one call): pinned by the version range.
                async with self._turn(True, urgent=not durable):
                    result: T = await driver._execute(run, driver._conn)
            except _CommitFailed as failed:
                wrapped = await self._driver_error(conn, failed.error)
                if is_transient(wrapped):
                    self._unreachable(wrapped)
                    raise CommitUnknown(f"commit outcome unknown: {_reason(wrapped)}") from wrapped
                raise wrapped from failed.error
            except Exception as error:
                wrapped = await self._driver_error(conn, error)
                await conn.close()  # before any backoff, as `transaction` does
                await self._before_retry(wrapped, attempt)
                continue
            finally:
                await conn.close()
            self._ok()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def on_loop_thread(
        self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True
    ) -> T:
        """SQLite: `on_driver_thread`'s transaction run right here, on the event loop's
        thread, on a connection of this `Database`'s own: no hand-off at all.

        The claim's `inline` path (issue 12). That connection has no busy timeout, so
        the loop never waits for the write lock: when another writer holds it (BEGIN
        IMMEDIATE, or anything before COMMIT, meets SQLITE_BUSY; nothing was written)
        the transaction goes to `on_driver_thread` at once, which waits there with the
        pool's busy timeout. It never checkpoints the WAL itself (the pool's connections
        do, on their own thread). Where a second connection cannot open the same
        database (`:memory:`, a URI filename), from another thread than the one that
        opened it, or while it cannot be opened, `on_driver_thread` does it all. Every
        other rule, and the classification of every failure, is `on_driver_thread`'s.
        """
        if durable:  # its fsync would hold the loop: on aiosqlite's thread, as `raw`
            return await self._on_driver_thread(work, durable=True, first=0)
        for attempt in range(self.retries + 1):
            connection = self._loop_connection()
            if connection is None:
                return await self._on_driver_thread(work, durable=durable, first=attempt)
            gate = self.gate
            if gate is not None and not gate.try_acquire():
                # Another writer of this process has its turn: queue behind it, first.
                self.loop_fallbacks += 1
                return await self._on_driver_thread(work, durable=durable, first=attempt)
            try:
                try:
                    result = _sqlite_transaction(work, self._loop_info, "NORMAL", connection)
                except _CommitFailed:
                    self._end_loop_transaction(connection)  # before the turn passes on
                    raise
                finally:
                    if gate is not None:
                        gate.release()  # before any fallback: it queues at this gate
            except _CommitFailed as failed:
                wrapped = self._sqlite_error(failed.error)
                if is_transient(wrapped):
                    self._unreachable(wrapped)
                    raise CommitUnknown(f"commit outcome unknown: {_reason(wrapped)}") from wrapped
                raise wrapped from failed.error
            except Exception as error:
                if _busy(error):  # rolled back: nothing of it was written
                    self.loop_fallbacks += 1
                    return await self._on_driver_thread(work, durable=durable, first=attempt)
                await self._before_retry(self._sqlite_error(error), attempt)
                continue
            self._ok()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _loop_connection(self) -> sqlite3.Connection | None:
        """`on_loop_thread`'s connection, opened on first use by the calling thread; None
        where it cannot serve (see `on_loop_thread`)."""
        if self._loop_file is None:
            return None
        if self._loop_conn is not None:
            return self._loop_conn if self._loop_thread == threading.get_ident() else None
        try:
            connection = _open_loop_connection(self._loop_file)
        except sqlite3.Error as error:
            log.warning("claim_connection_unavailable", reason=_reason(error))
            return None  # the pool's path this time; opened again next time
        if connection is None:
            log.warning("claim_connection_unavailable", reason="not in WAL mode")
            self._loop_file = None  # a second connection's writes would block readers
            return None
        self._loop_conn, self._loop_thread = connection, threading.get_ident()
        self._loop_info.clear()
        return connection

    def _end_loop_transaction(self, connection: sqlite3.Connection) -> None:
        """After a failed COMMIT: a transaction still open (SQLITE_BUSY leaves it open)
        would hold the write lock against every other writer."""
        try:
            if connection.in_transaction:
                connection.rollback()
        except sqlite3.Error:
            self._close_loop_connection()

    def _close_loop_connection(self) -> None:
        connection, self._loop_conn, self._loop_thread = self._loop_conn, None, None
        if connection is not None:
            # A connection that cannot even close has nothing left to lose.
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def _sqlite_error(self, error: Exception) -> Exception:
        """`on_loop_thread`'s error as `_driver_error` gives it; a connection it broke is
        closed (opened afresh by the next claim)."""
        wrapped = _as_sqlalchemy(self.engine, error)
        if isinstance(wrapped, exc.DBAPIError) and wrapped.connection_invalidated:
            self._close_loop_connection()
        return wrapped

    async def _driver_error(self, conn: AsyncConnection, error: Exception) -> Exception:
        """A SQLite driver's error as SQLAlchemy would raise it; a connection it broke is
        dropped from the pool (as SQLAlchemy drops it)."""
        wrapped = _as_sqlalchemy(self.engine, error)
        if isinstance(wrapped, exc.DBAPIError) and wrapped.connection_invalidated:
            await conn.invalidate()
        return wrapped

    async def on_driver(self, work: Callable[[Any], Awaitable[T]], *, durable: bool = True) -> T:
        """PostgreSQL: `work`, one write statement, on the asyncpg connection itself,
        autocommitted: `statement` without SQLAlchemy's per-execute work (issue 12).

        The connection comes from the same pool as `statement`'s (so the same
        `synchronous_commit`); failing to connect is retried, a connection failing once
        the statement is on its way raises `CommitUnknown`, classified as SQLAlchemy
        classifies it (a closed connection counts as lost, and is dropped from the pool).
        Only where `runs_alone`.
        """
        if not self.runs_alone(durable=durable):
            raise ValueError("a deferred write without a pool of its own needs a transaction")
        engine = self._deferred_pool if not durable else self.engine
        assert engine is not None
        for attempt in range(self.retries + 1):
            try:
                conn = await engine.connect()
            except Exception as error:
                await self._before_retry(error, attempt)
                continue
            driver: Any = None
            try:
                driver = (await conn.get_raw_connection()).driver_connection
                result = await work(driver)
            except Exception as error:
                if is_transient(error) or (driver is not None and driver.is_closed()):
                    await conn.invalidate()
                    self._unreachable(error)
                    raise CommitUnknown(f"commit outcome unknown: {_reason(error)}") from error
                raise
            finally:
                await conn.close()
            self._ok()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def ping(self) -> DbHealth:
        """Check the connection once (for the health checker) and return the state."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as error:
            if not is_transient(error):
                raise
            self._unreachable(error)
        else:
            self._ok()
        return self.health

    def _ok(self) -> None:
        if self.health.state is not DbState.OK:
            self.health = DbHealth(DbState.OK, self.clock())
            # Commits that did not wait for the disk may have been lost with the
            # server (or its host): whoever relies on them checks now.
            for listener in self.reconnected:
                listener()

    def _unreachable(self, error: BaseException) -> None:
        reason = _reason(error)
        if self.health.state is not DbState.UNREACHABLE or self.health.reason != reason:
            self.health = DbHealth(DbState.UNREACHABLE, self.clock(), reason)


class _CommitFailed(Exception):
    """The COMMIT of `on_driver_thread`'s transaction failed: its outcome is unknown."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _sqlite_transaction(
    work: Callable[[sqlite3.Connection], T],
    info: dict[Any, Any],
    level: str,
    connection: sqlite3.Connection,
) -> T:
    """`on_driver_thread`'s transaction, on aiosqlite's thread."""
    if connection.in_transaction:  # never expected: what the pool's reset would have done
        connection.rollback()
    if info.get(_SYNCHRONOUS) != level:  # as `_sqlite_begin`: every writer states its level
        connection.execute(f"PRAGMA synchronous={level}").close()
        info[_SYNCHRONOUS] = level
    connection.execute("BEGIN IMMEDIATE").close()
    try:
        result = work(connection)
    except BaseException:
        connection.rollback()
        raise
    try:
        connection.commit()
    except Exception as error:
        raise _CommitFailed(error) from error
    return result


def _as_sqlalchemy(engine: AsyncEngine, error: Exception) -> Exception:
    """A SQLite driver's error given SQLAlchemy's class (`connection_invalidated` if it
    broke the connection), so `is_transient` reads it as it reads SQLAlchemy's own."""
    if isinstance(error, ValueError) and "closed" in str(error).lower():
        error = sqlite3.OperationalError("no active connection")  # SQLAlchemy's wording
    if not isinstance(error, sqlite3.Error):
        return error
    lost = engine.dialect.is_disconnect(error, None, None)  # type: ignore[arg-type]
    return exc.DBAPIError.instance(None, None, error, sqlite3.Error, connection_invalidated=lost)


def _busy(error: BaseException) -> bool:
    """SQLITE_BUSY (or one of its extended codes): a lock held by another connection."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF == _SQLITE_BUSY
    )


def _own_file(engine: AsyncEngine) -> str | None:
    """The database file a second connection can open to see `engine`'s database; None
    for a database only its own connection sees (`:memory:`) and for a URI filename
    (memory, read-only or another VFS may hide behind one: the pool's path serves it)."""
    if engine.dialect.name != "sqlite":
        return None
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    name = str(args[0]) if args else ""
    if kwargs.get("uri") or name in {"", ":memory:"} or name.startswith("file:"):
        return None
    return str(Path(name).absolute())


def _open_loop_connection(path: str) -> sqlite3.Connection | None:
    """`on_loop_thread`'s connection to the existing file `path` (never created here); None
    if the database is not in WAL mode."""
    connection = sqlite3.connect(
        Path(path).as_uri() + "?mode=rw",
        uri=True,
        timeout=0,  # busy_timeout 0: SQLITE_BUSY at once, never a wait on the loop
        isolation_level=None,  # BEGIN is ours, as on the pool's connections
        check_same_thread=False,  # closed by `dispose` from wherever; used by one thread
    )
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            connection.close()
            return None
        for pragma in (
            "busy_timeout=0",
            "foreign_keys=ON",
            # A checkpoint copies the WAL into the database file and may fsync: never on
            # the loop. The pool's connections keep the default (1000 pages) and
            # checkpoint at their commits, on aiosqlite's thread.
            "wal_autocheckpoint=0",
        ):
            connection.execute(f"PRAGMA {pragma}").close()
    except BaseException:
        connection.close()
        raise
    return connection


def _reason(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _backoff(base_ms: int, attempt: int) -> float:
    """Exponential with full jitter in its upper half, in seconds."""
    delay = float(base_ms * 2**attempt) / 1000
    return delay / 2 + random.uniform(0, delay / 2)
