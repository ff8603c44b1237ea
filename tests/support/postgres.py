"""A private PostgreSQL database per test session, on the real server (127.0.0.1:5432)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from tests.support.services import unavailable

PG_HOST = os.environ.get("HMT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HMT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HMT_TEST_PG_USER", "postgres")
ADMIN_DB = os.environ.get("HMT_TEST_PG_DB", "test")


def url_for(database: str, user: str = PG_USER) -> str:
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{database}"


async def admin(sql: str, database: str = ADMIN_DB) -> None:
    conn = await asyncpg.connect(url_for(database), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def private_database(prefix: str = "hmt_test") -> Iterator[str]:
    """Create `<prefix>_<random>`, yield its URL, drop it afterwards (even with sessions open)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not usable: {error}")
    try:
        yield url_for(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def migrated_database(prefix: str = "hmt_test") -> Iterator[str]:
    """`private_database`, upgraded to the newest revision before it is yielded."""
    from hmt.store import migrate
    from hmt.store.db import create_engine

    async def upgrade(url: str) -> None:
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    with private_database(prefix) as url:
        asyncio.run(upgrade(url))
        yield url
