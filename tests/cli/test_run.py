"""`hmt run` still checks every setting before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmt.cli import app


@pytest.mark.parametrize(
    ("name", "value"), [("HMT_PORT", "not-a-port"), ("HMT_PORT", "70000"), ("HMT_TICK_MODE", "x")]
)
def test_run_refuses_a_bad_server_setting(tmp_path: Path, name: str, value: str) -> None:
    """Exit 2 naming the variable; nothing is created (the database file is never opened)."""
    database = tmp_path / "hmt.db"
    env = {"HMT_DATABASE_URL": f"sqlite:///{database}", name: value}
    result = CliRunner().invoke(app, ["run"], env=env)
    assert result.exit_code == 2, result.output
    assert name in result.output
    assert not database.exists()
