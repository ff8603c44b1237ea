"""The performance history on both stores: written, read, folded to minutes, bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hmt.core.samples import Sample
from hmt.store import samples
from hmt.store.db import Database

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def ten_second_rows(start: datetime, end: datetime) -> list[Sample]:
    rows, at = [], start
    while at < end:
        minute = int((at - start).total_seconds()) // 60
        rows.append(
            Sample(
                at=at,
                seconds=10,
                figures={
                    "ticks_per_s": 100.0,
                    "orders_placed": 1,
                    "tick_to_order_p99_us": 1000 + minute,
                    "headroom_per_second": 10,
                    "health": "down" if at == start + timedelta(minutes=5, seconds=20) else "ok",
                },
            )
        )
        at += timedelta(seconds=10)
    return rows


async def test_rows_older_than_an_hour_fold_to_minutes_and_older_than_a_day_go(
    db: Database,
) -> None:
    """Two hours of 10-s rows and some 25-30 h old: one compaction leaves 60 minute rows,
    360 10-s rows, nothing over a day old, and the minutes keep their counts and worst."""
    engine = "engine-a"
    stale = ten_second_rows(NOW - timedelta(hours=30), NOW - timedelta(hours=25))
    recent = ten_second_rows(NOW - timedelta(hours=2), NOW)
    await samples.write_many(db, engine, [*stale, *recent])
    await samples.write_many(db, "engine-b", recent[:5])  # another engine's rows stay its own
    assert await samples.count(db, engine) == len(stale) + len(recent) == 1800 + 720

    folded, deleted = await samples.compact(db, engine, NOW)
    assert folded == 360
    assert deleted == len(stale)
    rows = await samples.read(db, engine, NOW - timedelta(days=2))
    minutes = [r for r in rows if r.seconds == 60]
    fine = [r for r in rows if r.seconds == 10]
    assert len(minutes) == 60
    assert len(fine) == 360
    assert min(r.at for r in rows) == NOW - timedelta(hours=2)
    assert all(r.at >= NOW - timedelta(hours=1) for r in fine)
    first = minutes[0]
    assert first.at == NOW - timedelta(hours=2)
    assert first.figures["orders_placed"] == 6
    assert first.figures["ticks_per_s"] == 100.0
    assert first.figures["tick_to_order_p99_us"] == 1000
    sixth = minutes[5]
    assert sixth.figures["health"] == "down"  # one bad 10 s marks its minute
    assert {m.figures["health"] for m in minutes[:5] + minutes[6:]} == {"ok"}
    assert await samples.count(db, "engine-b") == 5

    # A second compaction at the same time changes nothing.
    assert await samples.compact(db, engine, NOW) == (0, 0)
    assert await samples.read(db, engine, NOW - timedelta(days=2)) == rows

    # Later by 30 minutes: 180 more 10-s rows fold, three minute rows from the earliest
    # half hour are past a day only much later; nothing else moves.
    folded, deleted = await samples.compact(db, engine, NOW + timedelta(minutes=30))
    assert (folded, deleted) == (180, 0)
    assert await samples.count(db, engine) == 60 + 30 + 180


async def test_the_row_cap_keeps_the_newest(db: Database) -> None:
    engine = "engine-capped"
    recent = ten_second_rows(NOW - timedelta(minutes=30), NOW)
    await samples.write_many(db, engine, recent)
    await samples.compact(db, engine, NOW, max_rows=50)
    rows = await samples.read(db, engine, NOW - timedelta(days=1))
    assert len(rows) == 50
    assert [r.at for r in rows] == [r.at for r in recent[-50:]]


async def test_a_second_write_of_a_window_replaces_it(db: Database) -> None:
    engine = "engine-again"
    await samples.write(db, engine, Sample(NOW, 10, {"orders_placed": 1, "health": "ok"}))
    await samples.write(db, engine, Sample(NOW, 10, {"orders_placed": 2, "health": "ok"}))
    (only,) = await samples.read(db, engine, NOW)
    assert only.figures["orders_placed"] == 2
