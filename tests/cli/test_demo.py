"""`hmt demo` listens where `hmt run` would: HMT_HOST and HMT_PORT, unless flags say otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hmt.cli import app
from tests.support.children import interruptible
from tests.support.engine_process import free_port

HMT = Path(sys.executable).with_name("hmt")


def test_demo_listens_on_hmt_host_and_hmt_port(tmp_path: Path) -> None:
    """With HMT_PORT set and no --port, the API answers on HMT_PORT and the banner says so."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
    env |= {"HMT_HOST": "127.0.0.1", "HMT_PORT": str(port)}
    with subprocess.Popen(
        [str(HMT), "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=interruptible,
    ) as process:
        try:
            assert process.stdout is not None
            banner = ""
            for line in process.stdout:
                banner += line
                if line.startswith("API:"):
                    break
            assert f"http://127.0.0.1:{port} " in banner, banner
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
            assert health.status_code in (200, 503)
            assert "status" in health.json()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    assert process.returncode == 0


def test_demo_refuses_a_bad_hmt_port_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad HMT_PORT is exit 2 naming it, as for `hmt run`, before any file is made."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"], env={"HMT_PORT": "70000"})
    assert result.exit_code == 2, result.output
    assert "HMT_PORT" in result.output
    assert not (tmp_path / "hmt-demo.db").exists()
