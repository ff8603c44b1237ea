"""Cluster fixtures: a private nats-server per test; an emptied fence store on the module's
migrated `pg_url`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hmt.store.db import Database, create_engine
from tests.support.nats_server import nats_server


@pytest.fixture
def nats_port(tmp_path: Path) -> Iterator[int]:
    with nats_server(tmp_path) as port:
        yield port


@pytest.fixture
def nats_url(nats_port: int) -> str:
    return f"nats://127.0.0.1:{nats_port}"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    """The module's database with no fences, triggers or events left by an earlier test."""
    database = Database(create_engine(pg_url, application_name="hmt-cluster-test"), retries=0)
    await database.transaction(
        lambda conn: conn.exec_driver_sql(
            "TRUNCATE hmt_partition_fences, hmt_gtt_orders, hmt_trigger_events"
        )
    )
    yield database
    await database.dispose()
