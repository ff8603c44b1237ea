"""The PostgreSQL change feed: every insert, update and delete on `hmt_gtt_orders`.

A trigger created by migration 0001 NOTIFYs `{"op", "id", "user_id"}` on the
channel `hmt_gtt_orders` for each row changed by anything: the engine, psql, a
hosted UI. `ChangeFeed` LISTENs on its own connection and yields a `Change`
per notification, in commit order.

LISTEN/NOTIFY never replays: a notification sent while the listener is
disconnected is gone. So after every (re)connect, once LISTEN is in place, the
feed yields `Resync`, and the consumer re-reads the active set. Anything
committed before LISTEN is covered by that read, anything after arrives as a
`Change`: nothing is missed. The first item of every feed is a `Resync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from hmt.waits import within, woken

CHANNEL = "hmt_gtt_orders"
log = structlog.get_logger(__name__)


class Op(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One row changed: re-read it by id (the payload carries nothing else)."""

    op: Op
    id: str
    user_id: str
    # When the notification reached the listener (monotonic seconds; 0 if unknown): the
    # change-feed lag is measured from here to the book being in step.
    received: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Resync:
    """Notifications may have been missed: re-read every active trigger."""

    reason: str


class FeedState(StrEnum):
    CONNECTING = "connecting"
    LISTENING = "listening"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


def parse(payload: str, received: float = 0.0) -> Change | Resync:
    """A notification's payload; anything unexpected asks for a resync, never crashes."""
    try:
        data = json.loads(payload)
        if data.get("op") == "truncate":
            return Resync("table truncated")
        return Change(Op(data["op"]), str(data["id"]), str(data["user_id"]), received)
    except (ValueError, KeyError, TypeError, AttributeError):
        return Resync(f"unreadable notification {payload[:80]!r}")


def asyncpg_dsn(url: str) -> str:
    """A plain `postgresql://` DSN for asyncpg from any SQLAlchemy-style URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class ChangeFeed:
    """Yields `Change` and `Resync` items for as long as it is iterated, reconnecting forever.

    `reconnect_delay` doubles after each failed attempt up to `max_delay`;
    `health_interval` is how often an idle connection is checked, so a silent
    network partition is noticed too, not only a closed socket.
    """

    def __init__(
        self,
        url: str,
        *,
        application_name: str = "hmt-listener",
        reconnect_delay: float = 5.0,
        max_delay: float = 60.0,
        health_interval: float = 30.0,
    ) -> None:
        self.dsn = asyncpg_dsn(url)
        self.application_name = application_name
        self.reconnect_delay = reconnect_delay
        self.max_delay = max_delay
        self.health_interval = health_interval
        self.state = FeedState.CONNECTING
        self.reconnects = 0
        self.last_error: str | None = None

    async def __aiter__(self) -> AsyncGenerator[Change | Resync, None]:
        queue: asyncio.Queue[Change | Resync] = asyncio.Queue()
        task = asyncio.create_task(self._run(queue), name="hmt-change-feed")
        getter: asyncio.Future[Change | Resync] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    task.result()  # the runner only ends by raising
                yield getter.result()
        finally:
            if getter is not None:
                # A consumer cancelled mid-wait must not leave the queue read pending:
                # it would be destroyed with the loop ("Task was destroyed but it is pending").
                getter.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.state = FeedState.CLOSED

    async def _run(self, queue: asyncio.Queue[Change | Resync]) -> None:
        delay = self.reconnect_delay
        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": self.application_name}
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                await self._wait_after(error, delay)
                delay = min(delay * 2, self.max_delay)
                continue
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    queue.put_nowait(parse(payload, time.monotonic()))

                await conn.add_listener(CHANNEL, on_notify)
                queue.put_nowait(Resync("connected" if first else "reconnected"))
                self.state, delay = FeedState.LISTENING, self.reconnect_delay
                if not first:
                    self.reconnects += 1
                first = False
                await self._watch(conn, lost)
                self.last_error = "connection closed by the server"
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
            finally:
                conn.terminate()
            self.state = FeedState.RECONNECTING
            log.warning("change feed lost its connection", error=self.last_error)
            await self._wait_after(None, delay)
            delay = min(delay * 2, self.max_delay)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is gone: closed by the server, or not answering."""
        while not lost.is_set() and not conn.is_closed():
            if await woken(lost, self.health_interval):
                return
            await within(conn.fetchval("SELECT 1"), self.health_interval)

    async def _wait_after(self, error: BaseException | None, delay: float) -> None:
        if error is not None:
            self.last_error = f"{type(error).__name__}: {error}"
            self.state = FeedState.RECONNECTING
            log.warning("change feed cannot connect", error=self.last_error, retry_in_s=delay)
        await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
