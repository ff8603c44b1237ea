"""The deployment files in deploy/ (compose, systemd, the env file) cannot be run here
(no registry for images, no systemd as PID 1), so what can be checked without running
them is: every HMT_ setting they set is one hmt reads and takes as valid, the nodes are
cluster nodes with their own ids and the cluster's shared settings, the commands parse
as hmt's CLI, migrations run once before the nodes, and the units pass
`systemd-analyze verify` (where it is installed) with no warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from hmt.cli import app
from hmt.config import PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "hmt.env.example"
NODE_UNIT = DEPLOY / "systemd" / "hmt-node@.service"
MIGRATE_UNIT = DEPLOY / "systemd" / "hmt-migrate.service"
KNOWN = {PREFIX + name.upper() for name in Settings.model_fields}


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def settings_of(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """hmt's settings from exactly `env` (a bad or unknown value raises, naming it)."""
    unknown = {k for k in env if k.startswith(PREFIX)} - KNOWN
    assert not unknown, f"not hmt settings: {unknown}"
    for name in KNOWN:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def parses(argv: list[str]) -> Any:
    """`argv` (from its console script on) parsed by hmt's CLI without running it: the
    command's context, its options in `params`; a bad option or command raises."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]} is not one of hmt's console scripts"
    # Typer's own copy of click: a group is whatever resolves subcommands.
    command: Any = typer.main.get_command(app)
    name, rest = argv[0], argv[1:]
    while hasattr(command, "resolve_command"):  # `hmt run`, `hmt db upgrade`
        context = command.make_context(name, rest)
        name, command, rest = command.resolve_command(
            context, [*context._protected_args, *context.args]
        )
        assert command is not None, name
    return command.make_context(name, list(rest))


@pytest.fixture
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def nodes_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("command", [None])[:2] == ["hmt", "run"]
    }


def test_the_compose_nodes_are_three_valid_cluster_nodes(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    nodes = nodes_of(compose)
    assert len(nodes) == 3
    shared = env_file(ENV_EXAMPLE)  # what deploy/hmt.env is copied from
    ids, ports, clusters = set(), set(), set()
    for node in nodes.values():
        assert node["env_file"] == ["hmt.env"]
        settings = settings_of(monkeypatch, shared | node["environment"])
        ids.add(settings.cluster_node_id())  # valid as a NATS key token, or it raises
        assert settings.db_auto_upgrade is False  # the migrate service ran them
        clusters.add(
            (settings.database_url, settings.cluster_partitions, settings.cluster_lease_ttl_s)
        )
        command = node["command"]
        context = parses(command)
        assert context.params["cluster"] == command[command.index("--cluster") + 1]
        nats = urlsplit(context.params["cluster"])
        assert (nats.scheme, nats.port) == ("nats", 4222)
        assert nats.hostname in services
        database = urlsplit(settings.database_url)
        assert database.hostname in services
        assert database.scheme == "postgresql"
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert node["build"]["dockerfile"] == "Dockerfile"
        assert (COMPOSE.parent / node["build"]["context"] / "Dockerfile").is_file()
        (port,) = node["ports"]
        ports.add(port.rsplit(":", 2)[-2])
        assert port.endswith(f":{settings.port}")  # the container's port is the API's
    assert len(ids) == 3, "every node needs its own HMT_ENGINE_ID"
    assert len(ports) == 3
    assert len(clusters) == 1, "one database, one partition count and one TTL for all"


def test_the_compose_services_fit_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    url = urlsplit(nodes_of(compose)["node-1"]["environment"]["HMT_DATABASE_URL"])
    assert (url.username, url.password, url.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    assert "-js" in services["nats"]["command"]  # JetStream: the leases are a KV bucket
    migrate = services["migrate"]
    assert migrate["command"] == ["hmt", "db", "upgrade"]
    parses(migrate["command"])
    assert migrate["environment"]["HMT_DATABASE_URL"] == url.geturl()
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert migrate["image"] == nodes_of(compose)["node-1"]["image"]


def test_the_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_file(ENV_EXAMPLE)
    settings = settings_of(monkeypatch, env)
    assert settings.cluster_url is not None
    assert settings.db_auto_upgrade is False
    assert "HMT_ENGINE_ID" not in env  # each node's own: compose, or the unit's instance


def unit(path: Path) -> dict[str, list[str]]:
    """Each `Key=value` of a unit file, values in order (keys may repeat)."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            keys.setdefault(match.group(1), []).append(match.group(2))
    return keys


def test_the_node_unit_runs_a_cluster_node(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = unit(NODE_UNIT)
    assert keys["Environment"] == ["HMT_ENGINE_ID=%i"]  # the instance name is the node id
    assert keys["EnvironmentFile"][0] == "/etc/hmt/hmt.env"
    env = env_file(ENV_EXAMPLE) | {"HMT_ENGINE_ID": "node-1"}
    settings = settings_of(monkeypatch, env)
    (exec_start,) = keys["ExecStart"]
    argv = exec_start.split()
    assert argv[0] == "/opt/hmt/bin/hmt"
    # systemd puts the variable's value in as one word.
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word) for word in argv]
    context = parses([Path(argv[0]).name, *argv[1:]])
    assert context.params["cluster"] == settings.cluster_url
    assert keys["RestartPreventExitStatus"] == ["2"]  # a refused configuration stays down
    assert "hmt-migrate.service" in keys["After"][0]
    migrate = unit(MIGRATE_UNIT)
    (exec_migrate,) = migrate["ExecStart"]
    assert exec_migrate.split()[0] == argv[0]
    parses(["hmt", *exec_migrate.split()[1:]])


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """With the paths moved to this machine: hmt's console script from this
    environment, the env file from the example."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    hmt = Path(shutil.which("hmt") or Path(__file__).parents[2] / ".venv" / "bin" / "hmt")
    assert hmt.exists()
    (tmp_path / "hmt.env").write_text(ENV_EXAMPLE.read_text())
    for source in (NODE_UNIT, MIGRATE_UNIT):
        text = source.read_text()
        text = text.replace("/opt/hmt/bin/hmt", str(hmt))
        text = text.replace("/etc/hmt/hmt.env", str(tmp_path / "hmt.env"))
        (tmp_path / source.name).write_text(text)
    (tmp_path / "hmt-node@node-1.service").symlink_to(tmp_path / NODE_UNIT.name)
    result = subprocess.run(
        [
            analyze,
            "verify",
            str(tmp_path / "hmt-node@node-1.service"),
            str(tmp_path / MIGRATE_UNIT.name),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings
