"""Cluster fixtures: a private nats-server per test; an emptied fence store on the module's
migrated `pg_url`; the node processes' trigger store on the module's `pg_url`, migrated and
emptied, with the module's `PARTITIONS`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hmt.store import migrate
from hmt.store.db import Database, create_engine
from hmt.store.triggers import TriggerStore
from tests.support.nats_server import nats_server


@pytest.fixture
def nats_port(tmp_path: Path) -> Iterator[int]:
    with nats_server(tmp_path) as port:
        yield port


@pytest.fixture
def nats_url(nats_port: int) -> str:
    return f"nats://127.0.0.1:{nats_port}"


EMPTIED = "TRUNCATE hmt_partition_fences, hmt_gtt_orders, hmt_trigger_events"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    """The module's database with no fences, triggers or events left by an earlier test."""
    database = Database(create_engine(pg_url, application_name="hmt-cluster-test"), retries=0)
    await database.transaction(lambda conn: conn.exec_driver_sql(EMPTIED))
    yield database
    await database.dispose()


@pytest.fixture
async def store(pg_url: str, request: pytest.FixtureRequest) -> AsyncIterator[TriggerStore]:
    """The store the node processes share: migrated, emptied, with the module's partitions."""
    engine = create_engine(pg_url, application_name="hmt-test")
    await migrate.upgrade(engine)
    db = Database(engine, retries=2, backoff_ms=50)
    await db.transaction(lambda conn: conn.exec_driver_sql(EMPTIED))
    yield TriggerStore(db, partitions=request.module.PARTITIONS)
    await engine.dispose()
