"""The engine's day highs and lows kept across restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from hmt.store.db import Database
from hmt.store.tables import day_ranges
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock

DAY = date(2026, 3, 2)
NIFTY, BANK = 256265, 260105


async def test_saved_ranges_read_back_per_broker_and_day(store: TriggerStore) -> None:
    """What is saved for a broker and day is what that broker and day read; others see none."""
    assert await store.day_ranges("kite", DAY) == {}
    await store.save_day_ranges(
        "kite", DAY, {NIFTY: (2_395_000, 2_371_050), BANK: (5_100_000, 5_000_000)}
    )
    assert await store.day_ranges("kite", DAY) == {
        NIFTY: (2_395_000, 2_371_050),
        BANK: (5_100_000, 5_000_000),
    }
    assert await store.day_ranges("kite", DAY + timedelta(days=1)) == {}
    assert await store.day_ranges("sim", DAY) == {}


async def test_a_save_only_widens_the_range(
    store: TriggerStore, db: Database, clock: Clock
) -> None:
    """A higher high and a lower low replace the stored ones; a narrower range (a late or
    second writer) never shrinks them; each side moves on its own; updated_at follows."""
    await store.save_day_ranges("kite", DAY, {NIFTY: (2_390_000, 2_380_000)})
    clock.advance(seconds=5)
    await store.save_day_ranges("kite", DAY, {NIFTY: (2_385_000, 2_383_000)})  # inside
    assert await store.day_ranges("kite", DAY) == {NIFTY: (2_390_000, 2_380_000)}
    await store.save_day_ranges("kite", DAY, {NIFTY: (2_395_000, 2_381_000)})  # high only
    assert await store.day_ranges("kite", DAY) == {NIFTY: (2_395_000, 2_380_000)}
    await store.save_day_ranges("kite", DAY, {NIFTY: (2_391_000, 2_370_000), BANK: (7, 5)})
    assert await store.day_ranges("kite", DAY) == {NIFTY: (2_395_000, 2_370_000), BANK: (7, 5)}
    async with db.engine.connect() as conn:
        updated = (
            await conn.execute(
                select(day_ranges.c.updated_at).where(day_ranges.c.instrument_token == NIFTY)
            )
        ).scalar_one()
    assert updated == clock.now


async def test_many_instruments_are_saved_in_one_call(store: TriggerStore) -> None:
    """More instruments than one statement takes are all saved (chunked, one transaction)."""
    ranges = {token: (token + 10, token) for token in range(1, 1_301)}
    await store.save_day_ranges("kite", DAY, ranges)
    assert await store.day_ranges("kite", DAY) == ranges


async def test_a_range_with_low_above_high_is_refused_and_nothing_is_saved(
    store: TriggerStore,
) -> None:
    """The error names the instrument; the valid ranges given with it are not saved either."""
    with pytest.raises(ValueError, match=str(BANK)):
        await store.save_day_ranges("kite", DAY, {NIFTY: (10, 5), BANK: (5, 10)})
    assert await store.day_ranges("kite", DAY) == {}


async def test_old_days_can_be_forgotten(store: TriggerStore) -> None:
    """Ranges of days before a given one go; that day's and later stay; other brokers stay."""
    for offset in range(3):
        await store.save_day_ranges("kite", DAY + timedelta(days=offset), {NIFTY: (2, 1)})
    await store.save_day_ranges("sim", DAY, {NIFTY: (2, 1)})
    assert await store.forget_day_ranges("kite", DAY + timedelta(days=2)) == 2
    assert await store.day_ranges("kite", DAY) == {}
    assert await store.day_ranges("kite", DAY + timedelta(days=2)) == {NIFTY: (2, 1)}
    assert await store.day_ranges("sim", DAY) == {NIFTY: (2, 1)}
