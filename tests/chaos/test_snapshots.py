"""The lost-commit fault itself: a restored snapshot really takes back what was committed since."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from tests.support.pg_cluster import PgCluster
from tests.support.snapshots import ClusterSnapshots, SqliteSnapshots


async def test_sqlite_restore_forgets_commits_made_after_the_snapshot(tmp_path: Path) -> None:
    """A WAL-mode file written by a connection left open: restored, only the first row is left."""
    path = tmp_path / "hmt.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE claims (n INTEGER)")
    writer.execute("INSERT INTO claims VALUES (1)")
    snapshots = SqliteSnapshots(path)
    await snapshots.take()
    writer.execute("INSERT INTO claims VALUES (2)")
    writer.close()  # the engine is stopped before a restore
    await snapshots.restore()
    reader = sqlite3.connect(path)
    try:
        assert reader.execute("SELECT n FROM claims").fetchall() == [(1,)]
    finally:
        reader.close()


async def test_cluster_rollback_forgets_commits_made_after_the_snapshot(
    chaos_cluster: PgCluster,
) -> None:
    """pg_basebackup, a commit, then `-m immediate` and the copy restored: the commit is gone."""
    conn = await asyncpg.connect(chaos_cluster.url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS probe (n int); TRUNCATE probe")
        await conn.execute("INSERT INTO probe VALUES (1)")
        snapshots = ClusterSnapshots(chaos_cluster)
        await snapshots.take()
        await conn.execute("INSERT INTO probe VALUES (2)")
    finally:
        await conn.close()
    rollbacks = chaos_cluster.rollbacks
    await snapshots.restore()
    conn = await asyncpg.connect(chaos_cluster.url)
    try:
        assert [r["n"] for r in await conn.fetch("SELECT n FROM probe")] == [1]
        await conn.execute("DROP TABLE probe")
    finally:
        await conn.close()
    assert chaos_cluster.rollbacks == rollbacks + 1
    assert "immediate shutdown request" in chaos_cluster.server_log(last=1 << 20)
