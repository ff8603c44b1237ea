"""Installable as a package: the built wheel carries the UI's files and the migrations, and
installed in a fresh virtual environment outside the checkout, `hmt demo` serves the UI and
its triggers fire."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.children import interruptible
from tests.support.engine_process import free_port
from tests.support.services import ROOT

# Installing the dependencies into a fresh environment takes a while (from the pip cache
# once warm; from the package index the first time).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PACKAGED = (
    "hmt/ui/templates/dashboard.html",
    "hmt/ui/templates/trigger.html",
    "hmt/ui/templates/performance.html",
    "hmt/ui/static/app.css",
    "hmt/ui/static/performance.js",
    "hmt/ui/static/vendor/lightweight-charts/lightweight-charts.standalone.production.js",
    "hmt/ui/static/vendor/lightweight-charts/LICENSE",
    "hmt/store/migrations/env.py",
    "hmt/store/migrations/script.py.mako",
    "hmt/store/migrations/versions/0001_initial.py",
)


def run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def test_the_wheel_installs_outside_the_checkout_and_its_demo_fires(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("hmt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(PACKAGED) <= names, set(PACKAGED) - names
    migrations = {n for n in names if n.startswith("hmt/store/migrations/versions/0")}
    in_checkout = {
        f"hmt/store/migrations/versions/{p.name}"
        for p in (ROOT / "src/hmt/store/migrations/versions").glob("0*.py")
    }
    assert migrations == in_checkout

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin/python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    where = subprocess.run(
        [venv / "bin/python", "-c", "import hmt; print(hmt.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the checkout

    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HMT_", "PYTHON"))}
    with subprocess.Popen(
        [venv / "bin/hmt", "demo", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=interruptible,
    ) as demo:
        try:
            assert demo.stdout is not None
            lines = []
            for line in demo.stdout:
                lines.append(line.rstrip("\n"))
                if len(lines) >= 2 and lines[-2].endswith("The demo user's token:"):
                    break
            token = lines[-1]
            assert token.startswith("hmt_"), lines
            auth = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                assert "text/html" in client.get("/ui/").headers["content-type"]
                assert client.get("/ui/performance").status_code == 200
                script = client.get("/ui/static/performance.js")
                assert script.status_code == 200
                assert "performance/history" in script.text
                deadline = time.monotonic() + 120
                placed: list[object] = []
                while time.monotonic() < deadline and not placed:
                    found = client.get("/triggers", params={"status": "placed"}, headers=auth)
                    assert found.status_code == 200, found.text
                    placed = found.json()
                    time.sleep(0.5)
                assert placed, "no demo trigger fired and was placed within 120 s"
                stats = client.get("/stats", headers=auth).json()
                assert stats["triggered_orders"] >= 1
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=60)
    assert demo.returncode == 0
    assert (home / "hmt-demo.db").is_file()
