"""Counts for limits and metrics: triggers by status, events by kind."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.events import EventKind
from hmt.store.db import Database
from hmt.store.rls import scope
from hmt.store.tables import gtt_orders as t
from hmt.store.tables import trigger_events as e


async def triggers_by_status(db: Database, user_id: str | None = None) -> dict[str, int]:
    """How many triggers are in each status: one user's, or everyone's."""
    query = select(t.c.status, func.count()).group_by(t.c.status)
    if user_id is not None:
        query = query.where(t.c.user_id == user_id)

    async def work(conn: AsyncConnection) -> dict[str, int]:
        if user_id is not None:
            await scope(conn, user_id)
        return {str(status): int(n) for status, n in (await conn.execute(query)).all()}

    return await db.transaction(work, write=False)


async def events_of_kind(db: Database, kind: EventKind) -> int:
    """How many events of `kind` were ever recorded (every user's)."""
    query = select(func.count()).select_from(e).where(e.c.kind == kind.value)

    async def work(conn: AsyncConnection) -> int:
        return int((await conn.execute(query)).scalar_one())

    return await db.transaction(work, write=False)


async def events_since(db: Database, since: datetime) -> dict[str, int]:
    """How many events of each kind were recorded at or after `since` (every user's)."""
    query = select(e.c.kind, func.count()).where(e.c.at >= since).group_by(e.c.kind)

    async def work(conn: AsyncConnection) -> dict[str, int]:
        return {str(kind): int(n) for kind, n in (await conn.execute(query)).all()}

    return await db.transaction(work, write=False)
