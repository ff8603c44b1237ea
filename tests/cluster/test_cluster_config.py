"""HMT_CLUSTER_* settings and `hmt run --cluster`: clear errors, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmt.cli import app
from hmt.config import ConfigError, load_settings

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


def test_run_cluster_option_is_checked_and_then_refused(tmp_path: Path) -> None:
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
    good = runner.invoke(
        app,
        ["run", "--cluster", "nats://127.0.0.1:4222"],
        env={"HMT_DATABASE_URL": PG, "HMT_ENGINE_ID": "node-1"},
    )
    assert good.exit_code == 2  # valid, but the engine does not run as a node yet
    assert "cluster node 'node-1' on nats://127.0.0.1:4222" in good.output
    assert "64 partitions, lease TTL 3 s" in good.output
