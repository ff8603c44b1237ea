"""Store fixtures: the same tests run on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hmt.kite.segments import divisor_for
from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore
from tests.support.postgres import admin, private_database

TABLES = (
    "hmt_gtt_orders, hmt_trigger_events, hmt_trigger_orders, hmt_day_ranges, hmt_trail_states, "
    "hmt_metric_samples, hmt_api_tokens, hmt_broker_accounts, hmt_accounts, hmt_notify_channels, "
    "hmt_users"
)


class Clock:
    """A clock the test moves by hand; starts at a fixed, timezone-aware instant."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def _migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private, migrated PostgreSQL database for the whole session."""
    with private_database() as url:
        asyncio.run(_migrated(url))
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = f"sqlite:///{tmp_path / 'hmt.db'}"
        asyncio.run(_migrated(path))
        return path
    pg: str = request.getfixturevalue("pg_url")
    asyncio.run(admin(f"TRUNCATE {TABLES}", database=pg.rsplit("/", 1)[1]))
    return pg


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def db(url: str, clock: Clock) -> AsyncIterator[Database]:
    database = Database(
        create_engine(url, application_name="hmt-test"), retries=2, backoff_ms=10, clock=clock
    )
    yield database
    await database.dispose()


@pytest.fixture
def store(db: Database, clock: Clock) -> TriggerStore:
    # As the composition builds it: rows other tools stored without a divisor use Kite's rule.
    return TriggerStore(db, clock=clock, divisor_of=divisor_for)
