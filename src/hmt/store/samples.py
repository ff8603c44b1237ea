"""The performance history in `hmt_metric_samples`: written, read, folded and bounded.

Each engine writes its own rows (keyed by its id, several engines may share a
database). `compact` keeps the table small whatever runs: rows finer than a
minute and older than `fine_for` are folded into one row per minute
(`hmt.core.samples.fold_older`), every row older than `keep` is deleted, and
at most `max_rows` rows per engine are kept (the newest), so a clock jump or a
burst of writes cannot grow it past that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.samples import Sample, fold_older
from hmt.store.db import Database
from hmt.store.tables import metric_samples as m

FINE_FOR = timedelta(hours=1)
KEEP = timedelta(hours=24)
MINUTE = 60
# A day of minutes and an hour of 10-s rows, with room to spare.
MAX_ROWS = 2_400
# Rows per statement (SQLite's bound parameters: 4 a row, and 2 a key in the delete).
_CHUNK = 200


async def write(db: Database, engine: str, sample: Sample) -> None:
    """Store one row (a second write of the same window replaces it)."""
    await write_many(db, engine, [sample])


async def write_many(db: Database, engine: str, rows: Sequence[Sample]) -> None:
    """Store rows in one transaction (an import, a test's day of history)."""

    async def work(conn: AsyncConnection) -> None:
        for start in range(0, len(rows), _CHUNK):
            await _replace(conn, engine, rows[start : start + _CHUNK])

    await db.transaction(work)


async def read(db: Database, engine: str, since: datetime) -> list[Sample]:
    """The engine's rows from `since` on, oldest first (finer rows after coarser at a tie)."""
    query = (
        select(m.c.at, m.c.seconds, m.c.figures)
        .where(m.c.engine == engine, m.c.at >= since)
        .order_by(m.c.at, m.c.seconds.desc())
    )

    async def work(conn: AsyncConnection) -> list[Sample]:
        rows = await conn.execute(query)
        return [
            Sample(at=at, seconds=int(seconds), figures=figures) for at, seconds, figures in rows
        ]

    return await db.transaction(work, write=False)


async def count(db: Database, engine: str) -> int:
    async def work(conn: AsyncConnection) -> int:
        return int(
            (await conn.execute(select(func.count()).where(m.c.engine == engine))).scalar_one()
        )

    return await db.transaction(work, write=False)


async def compact(
    db: Database,
    engine: str,
    now: datetime,
    *,
    fine_for: timedelta = FINE_FOR,
    keep: timedelta = KEEP,
    max_rows: int = MAX_ROWS,
) -> tuple[int, int]:
    """Fold, expire and cap the engine's rows, all or nothing; (rows folded, rows deleted)."""

    async def work(conn: AsyncConnection) -> tuple[int, int]:
        expired = await conn.execute(delete(m).where(m.c.engine == engine, m.c.at < now - keep))
        deleted = int(expired.rowcount or 0)
        old = await conn.execute(
            select(m.c.at, m.c.seconds, m.c.figures).where(
                m.c.engine == engine, m.c.seconds < MINUTE, m.c.at < now - fine_for
            )
        )
        fine = [Sample(at=at, seconds=int(s), figures=f) for at, s, f in old]
        folded, replaced = fold_older(fine, now - fine_for, MINUTE)
        if replaced:
            await conn.execute(
                delete(m).where(
                    m.c.engine == engine,
                    m.c.seconds < MINUTE,
                    m.c.at < max(r.at for r in replaced) + timedelta(microseconds=1),
                    m.c.at >= min(r.at for r in replaced),
                )
            )
            for start in range(0, len(folded), _CHUNK):
                await _replace(conn, engine, folded[start : start + _CHUNK])
        newest = (
            select(m.c.seconds, m.c.at)
            .where(m.c.engine == engine)
            .order_by(m.c.at.desc(), m.c.seconds)
            .offset(max_rows)
            .limit(1)
        )
        cut = (await conn.execute(newest)).first()
        if cut is not None:
            capped = await conn.execute(
                delete(m).where(
                    m.c.engine == engine,
                    (m.c.at < cut.at) | and_(m.c.at == cut.at, m.c.seconds >= cut.seconds),
                )
            )
            deleted += int(capped.rowcount or 0)
        return len(replaced), deleted

    return await db.transaction(work)


async def _replace(conn: AsyncConnection, engine: str, samples: Sequence[Sample]) -> None:
    """Upsert by delete then insert: one statement shape on both backends."""
    if not samples:
        return
    keys = [(s.seconds, s.at) for s in samples]
    await conn.execute(delete(m).where(m.c.engine == engine, tuple_(m.c.seconds, m.c.at).in_(keys)))
    rows: list[dict[str, Any]] = [
        {"engine": engine, "seconds": s.seconds, "at": s.at, "figures": dict(s.figures)}
        for s in samples
    ]
    await conn.execute(insert(m), rows)
