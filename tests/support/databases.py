"""Database fixtures for tests that run the whole system on both stores.

A conftest makes them available by importing them; each importing conftest gets
its own private PostgreSQL database for the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.postgres import private_database, url_for

TABLES = (
    "hmt_gtt_orders, hmt_trigger_events, hmt_trigger_orders, hmt_day_ranges, hmt_trail_states, "
    "hmt_metric_samples, hmt_api_tokens, hmt_broker_accounts, hmt_accounts, hmt_notify_channels, "
    "hmt_users, hmt_brackets, hmt_bracket_events"
)


@pytest.fixture(scope="session")
def live_pg_url() -> Iterator[str]:
    """A private PostgreSQL database for the session (the runtime migrates it)."""
    with private_database("hmt_live") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a fresh SQLite file, the private PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hmt.db'}"
    url: str = request.getfixturevalue("live_pg_url")
    asyncio.run(empty_database(url.rsplit("/", 1)[1]))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file, for tests where the store does not matter."""
    return f"sqlite:///{tmp_path / 'hmt.db'}"


async def empty_database(database: str) -> None:
    """Empty every hmt table of `database`, if it has been migrated."""
    conn = await asyncpg.connect(url_for(database))
    try:
        if await conn.fetchval("SELECT to_regclass('hmt_gtt_orders') IS NOT NULL"):
            await conn.execute(f"TRUNCATE {TABLES}")
    finally:
        await conn.close()
