"""`hmt status`: the health from the running API, the day's counts from the database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.engine_process import free_port
from tests.support.system import running_system

HMT = Path(sys.executable).with_name("hmt")
INFY = 408065


def status(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
    env["HMT_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(HMT), "status", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_status_prints_the_health_and_the_days_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with running_system(url) as system:
        system.push(INFY, "1600.00")
        placed = await system.create(trigger_price_1="1610.00")
        system.sim.faults.add(
            kind="error",
            endpoint="place_order",
            times=1,
            error_type="InputException",
            message="refused for the test",
        )
        failed = await system.create(trigger_price_1="1620.00")
        await system.create(trigger_price_1="1700.00")  # stays active
        system.push(INFY, "1610.00")
        await system.settled(placed["id"])
        system.push(INFY, "1620.00")
        await system.settled(failed["id"])
        done = await asyncio.to_thread(status, url, "--url", system.api_url)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"engine: ok ({system.api_url})" in out
    today = re.search(r"today \(\d{4}-\d\d-\d\d IST\): (.*)", out)
    assert today is not None, out
    assert "fired 2, placed 1, failed 1," in today.group(1)
    assert "triggers: active 1, failed 1, placed 1" in out


def test_status_without_a_running_engine_still_counts_and_exits_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hmt.db'}"
    subprocess.run(
        [str(HMT), "db", "upgrade"],
        env={**os.environ, "HMT_DATABASE_URL": url},
        capture_output=True,
        check=True,
    )
    done = status(url, "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "not answering" in done.stdout
    assert "fired 0, placed 0, failed 0" in done.stdout
    assert "triggers: none" in done.stdout
