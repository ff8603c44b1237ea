"""HMT_CLUSTER_* settings and `hmt run --cluster`: clear errors before anything starts,
and a valid node runs (and leaves cleanly)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmt.cli import app
from hmt.cluster.connection import connect
from hmt.cluster.leases import DEFAULT_BUCKET, open_bucket, read_leases
from hmt.config import ConfigError, load_settings
from hmt.sim.simulator import Simulator
from tests.support.engine_process import engine_process
from tests.support.eventually import eventually
from tests.support.postgres import private_database

PG = "postgresql://postgres@127.0.0.1:5432/hmt"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HMT_CLUSTER_URL",
        "HMT_CLUSTER_PARTITIONS",
        "HMT_CLUSTER_LEASE_TTL_S",
        "HMT_DATABASE_URL",
        "HMT_ENGINE_ID",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_one_node() -> None:
    s = load_settings()
    assert s.cluster_url is None
    assert (s.cluster_partitions, s.cluster_lease_ttl_s) == (64, 3.0)


def test_cluster_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMT_DATABASE_URL", PG)
    monkeypatch.setenv("HMT_CLUSTER_URL", " nats://10.0.0.1:4222, tls://nats.example:4443 ")
    monkeypatch.setenv("HMT_CLUSTER_PARTITIONS", "256")
    monkeypatch.setenv("HMT_CLUSTER_LEASE_TTL_S", "6.5")
    monkeypatch.setenv("HMT_ENGINE_ID", "node-1")
    s = load_settings()
    assert s.cluster_url == "nats://10.0.0.1:4222,tls://nats.example:4443"
    assert (s.cluster_partitions, s.cluster_lease_ttl_s) == (256, 6.5)
    assert s.cluster_node_id() == "node-1"


@pytest.mark.parametrize(
    ("env", "named", "rule"),
    [
        ({"HMT_CLUSTER_URL": "http://x:4222"}, "HMT_CLUSTER_URL", "not a NATS server URL"),
        ({"HMT_CLUSTER_URL": "nats://"}, "HMT_CLUSTER_URL", "not a NATS server URL"),
        ({"HMT_CLUSTER_URL": "nats://h:99999"}, "HMT_CLUSTER_URL", "bad port"),
        ({"HMT_CLUSTER_PARTITIONS": "0"}, "HMT_CLUSTER_PARTITIONS", "greater than or equal"),
        ({"HMT_CLUSTER_PARTITIONS": "5000"}, "HMT_CLUSTER_PARTITIONS", "less than or equal"),
        ({"HMT_CLUSTER_LEASE_TTL_S": "0.5"}, "HMT_CLUSTER_LEASE_TTL_S", "greater than"),
        ({"HMT_CLUSTER_LEASE_TTL_S": "soon"}, "HMT_CLUSTER_LEASE_TTL_S", "number"),
    ],
)
def test_bad_cluster_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str, rule: str
) -> None:
    monkeypatch.setenv("HMT_DATABASE_URL", PG)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert named in str(error.value)
    assert rule in str(error.value)


def test_a_cluster_needs_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMT_CLUSTER_URL", "nats://127.0.0.1:4222")
    with pytest.raises(ConfigError, match=r"HMT_CLUSTER_URL: .*needs PostgreSQL"):
        load_settings()


def test_a_node_id_must_suit_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMT_DATABASE_URL", PG)
    monkeypatch.setenv("HMT_ENGINE_ID", "host:1")
    with pytest.raises(ConfigError, match="HMT_ENGINE_ID 'host:1'"):
        load_settings().cluster_node_id()


def test_run_cluster_option_is_checked_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["run", "--cluster", "redis://x"], env={"HMT_DATABASE_URL": PG})
    assert bad.exit_code == 2
    assert "HMT_CLUSTER_URL" in bad.output
    assert "not a NATS server URL" in bad.output
    database = tmp_path / "hmt.db"
    sqlite = runner.invoke(
        app,
        ["run", "--cluster", "nats://127.0.0.1:4222"],
        env={"HMT_DATABASE_URL": f"sqlite:///{database}"},
    )
    assert sqlite.exit_code == 2
    assert "needs PostgreSQL" in sqlite.output
    assert not database.exists()
    dotted = runner.invoke(
        app,
        ["run", "--cluster", "nats://127.0.0.1:4222"],
        env={"HMT_DATABASE_URL": PG, "HMT_ENGINE_ID": "host.example"},
    )
    assert dotted.exit_code == 2
    assert "HMT_ENGINE_ID 'host.example' cannot name a cluster node" in dotted.output


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=16) as running:
        yield running


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_cli") as url:
        yield url


@pytest.mark.pg
async def test_run_cluster_runs_a_node_until_sigterm(
    sim: Simulator, pg_url: str, nats_url: str, tmp_path: Path
) -> None:
    """A valid `hmt run --cluster` runs: alone, it leases every partition, serves, and on
    SIGTERM gives its leases back and exits 0."""
    async with engine_process(
        sim,
        pg_url,
        tmp_path,
        name="node-1",
        engine_id="node-1",
        cluster_url=nats_url,
        cluster_partitions=8,
        cluster_lease_ttl_s=1.5,
    ) as node:
        await node.ready(within=60)

        async def leased() -> bool:
            nodes, held = await _leases(nats_url)
            return nodes == ["node-1"] and sorted(held) == list(range(8))

        await eventually(leased, within=20, interval=0.1)
        assert {h for h, _ in (await _leases(nats_url))[1].values()} == {"node-1"}
        started = node.events("cluster_node_started")
        assert started, node.output()
        assert started[0]["partitions"] == 8
        assert await node.stop() == 0
        assert await _leases(nats_url) == ([], {})  # a clean leave gives everything back


@pytest.mark.pg
async def test_a_node_with_another_lease_ttl_is_refused(
    sim: Simulator, pg_url: str, nats_url: str, tmp_path: Path
) -> None:
    nc = await connect(nats_url, 5.0, persistent=False)
    try:
        await open_bucket(nc, DEFAULT_BUCKET, 5.0)  # the cluster's TTL
    finally:
        await nc.close()
    async with engine_process(
        sim, pg_url, tmp_path, engine_id="node-2", cluster_url=nats_url
    ) as node:
        assert await node.exited(within=60) == 2
        assert "HMT_CLUSTER_LEASE_TTL_S must be the same on every node" in node.output()


async def _leases(nats_url: str) -> tuple[list[str], dict[int, tuple[str, int]]]:
    nc = await connect(nats_url, 1.5, persistent=False)
    try:
        return await read_leases(nc)
    finally:
        await nc.close()
