"""Database snapshots for the lost-commit fault (RELIABILITY 17), one per store.

`take()` copies the database as it is now, consistently, while the engine runs;
`restore()` (the engine stopped) puts that copy back, so every commit made in
between (claims, outcomes, creates, edits) is gone, as if the store had lost
its last writes. Both run in a thread: the simulator shares the test's event
loop and must keep answering the engine meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Protocol

from tests.support.pg_cluster import PgCluster


class Snapshots(Protocol):
    async def take(self) -> None: ...

    async def restore(self) -> None: ...


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy (its WAL included) into `target`."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


class SqliteSnapshots:
    """The database file copied aside with the backup API, and copied back the same way."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.copy = path.with_name(path.name + ".snapshot")

    async def take(self) -> None:
        self.copy.unlink(missing_ok=True)
        await asyncio.to_thread(_copy, self.path, self.copy)

    async def restore(self) -> None:
        assert self.copy.exists(), "restore without a snapshot"
        await asyncio.to_thread(_copy, self.copy, self.path)
        self.copy.unlink()


class ClusterSnapshots:
    """`pg_basebackup` of the private cluster; restored by a crash and a swap of data dirs."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster

    async def take(self) -> None:
        await asyncio.to_thread(self.cluster.snapshot)

    async def restore(self) -> None:
        await asyncio.to_thread(self.cluster.rollback)


def snapshots_for(database_url: str, cluster: PgCluster | None) -> Snapshots:
    """The snapshots of the campaign's database: its SQLite file, or the private cluster."""
    if database_url.startswith("sqlite"):
        return SqliteSnapshots(Path(database_url.removeprefix("sqlite:///")))
    assert cluster is not None, "PostgreSQL needs a cluster of its own to roll back"
    assert database_url == cluster.url, "the database is not the private cluster's"
    return ClusterSnapshots(cluster)
