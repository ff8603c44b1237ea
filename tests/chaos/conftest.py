"""The chaos modules' databases: a fresh SQLite file per chunk, or the private cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg_cluster import PgCluster, private_cluster


@pytest.fixture(scope="session")
def chaos_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of the chaos tests' own (initdb, pg_ctl): it can be rolled back."""
    with private_cluster() as cluster:
        yield cluster


@pytest.fixture
def cluster(backend: str, request: pytest.FixtureRequest) -> PgCluster | None:
    """The private cluster on PostgreSQL chunks, None on SQLite ones."""
    if backend == "sqlite":
        return None
    found: PgCluster = request.getfixturevalue("chaos_cluster")
    return found


@pytest.fixture
def database_url(backend: str, cluster: PgCluster | None, tmp_path: Path) -> str:
    """A fresh SQLite file, or the database of the private cluster (shared by its chunks)."""
    if cluster is None:
        return f"sqlite:///{tmp_path / 'hmt.db'}"
    return cluster.url
