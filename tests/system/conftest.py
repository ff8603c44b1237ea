"""System tests run on both stores: a fresh SQLite file, and a private PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.postgres import private_database, url_for

TABLES = "hmt_gtt_orders, hmt_trigger_events, hmt_api_tokens, hmt_broker_accounts, hmt_users"


@pytest.fixture(scope="session")
def system_pg_url() -> Iterator[str]:
    with private_database("hmt_system") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend (the runtime migrates it at start-up)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hmt.db'}"
    url: str = request.getfixturevalue("system_pg_url")
    asyncio.run(_empty(url.rsplit("/", 1)[1]))
    return url


async def _empty(database: str) -> None:
    conn = await asyncpg.connect(url_for(database))
    try:
        if await conn.fetchval("SELECT to_regclass('hmt_gtt_orders') IS NOT NULL"):
            await conn.execute(f"TRUNCATE {TABLES}")
    finally:
        await conn.close()
