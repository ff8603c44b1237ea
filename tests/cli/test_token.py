"""`hmt token` and `hmt db` check only the settings they read."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmt.cli import app

# Settings only the server reads, each set to a value `hmt run` refuses.
SERVER_ONLY = {
    "HMT_PORT": "not-a-port",
    "HMT_KITE_API_URL": "ftp://nowhere",
    "HMT_TICK_MODE": "depth",
    "HMT_MAX_BODY_BYTES": "1",
    "HMT_SECRET_KEY": "short",
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HMT_DATABASE_URL": f"sqlite:///{tmp_path / 'hmt.db'}", **SERVER_ONLY, **extra}


def test_token_create_and_revoke_work_despite_bad_server_settings(tmp_path: Path) -> None:
    """A bad HMT_PORT (and other server-only values) does not stop issuing or revoking a token."""
    runner = CliRunner()
    created = runner.invoke(app, ["token", "create", "--user", "alice"], env=_env(tmp_path))
    assert created.exit_code == 0, created.output
    token_id = created.output.split()[1]
    assert created.output.strip().splitlines()[-1].startswith("hmt_")
    revoked = runner.invoke(app, ["token", "revoke", token_id], env=_env(tmp_path))
    assert revoked.exit_code == 0, revoked.output
    assert f"token {token_id} revoked" in revoked.output


@pytest.mark.parametrize(
    ("args", "name", "value"),
    [
        (["token", "create", "--user", "alice"], "HMT_DATABASE_URL", "mysql://db/hmt"),
        (["token", "create", "--user", "alice"], "HMT_DB_AUTO_UPGRADE", "perhaps"),
        (["token", "revoke", "abc"], "HMT_DATABASE_URL", "mysql://db/hmt"),
        (["db", "upgrade"], "HMT_DATABASE_URL", "mysql://db/hmt"),
    ],
)
def test_a_bad_setting_a_command_reads_still_stops_it(
    tmp_path: Path, args: list[str], name: str, value: str
) -> None:
    """Exit 2 with a message naming the variable the command needs, and only that one."""
    result = CliRunner().invoke(app, args, env=_env(tmp_path, **{name: value}))
    assert result.exit_code == 2, result.output
    assert name in result.output
    assert "HMT_PORT" not in result.output


def test_db_upgrade_works_despite_a_bad_port(tmp_path: Path) -> None:
    """Migrating needs the database URL only."""
    result = CliRunner().invoke(app, ["db", "upgrade"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "database schema at revision" in result.output
