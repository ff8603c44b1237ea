"""The engine's last-seen day high and low per watched instrument (`hmt_day_ranges`).

Kept across restarts, so a touch missed while the engine was down is found
after it (docs/triggers.md, missed touches). Integer wire units of the
instrument, per broker and trading day. A save is an upsert that only widens
the stored range (the high only grows, the low only falls): two writers, or a
late write of an older range, never narrow what was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database
from hmt.store.tables import day_ranges as r

Clock = Callable[[], datetime]
# Rows per statement: far below SQLite's limit on bound parameters (6 per row).
_CHUNK = 500


async def read(db: Database, broker: str, day: date) -> dict[int, tuple[int, int]]:
    """Every instrument's (high, low) seen on `day` for `broker`."""
    query = select(r.c.instrument_token, r.c.high, r.c.low).where(
        r.c.broker == broker, r.c.day == day
    )

    async def work(conn: AsyncConnection) -> dict[int, tuple[int, int]]:
        rows = await conn.execute(query)
        return {int(token): (int(high), int(low)) for token, high, low in rows}

    return await db.transaction(work, write=False)


async def save(
    db: Database,
    broker: str,
    day: date,
    ranges: Mapping[int, tuple[int, int]],
    now: datetime,
) -> None:
    """Widen the stored ranges of `day` by `ranges` ({token: (high, low)}), all or none."""
    for token, (high, low) in ranges.items():
        if low > high:
            raise ValueError(f"day range of {token}: low {low} is above high {high}")
    rows = [
        {
            "broker": broker,
            "instrument_token": int(token),
            "day": day,
            "high": int(high),
            "low": int(low),
            "updated_at": now,
        }
        for token, (high, low) in ranges.items()
    ]
    if not rows:
        return

    async def work(conn: AsyncConnection) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for start in range(0, len(rows), _CHUNK):
            statement = dialect.insert(r).values(rows[start : start + _CHUNK])
            new = statement.excluded
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[r.c.broker, r.c.instrument_token, r.c.day],
                    set_={
                        "high": case((new.high > r.c.high, new.high), else_=r.c.high),
                        "low": case((new.low < r.c.low, new.low), else_=r.c.low),
                        "updated_at": new.updated_at,
                    },
                )
            )

    await db.transaction(work)


async def forget(db: Database, broker: str, before: date) -> int:
    """Delete `broker`'s ranges of days before `before`; how many rows went."""

    async def work(conn: AsyncConnection) -> int:
        result = await conn.execute(delete(r).where(r.c.broker == broker, r.c.day < before))
        return int(result.rowcount)

    return await db.transaction(work)
