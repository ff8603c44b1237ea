"""`hmt sim --broker upstox` prints its settings and serves Upstox's REST on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

HMT = str(Path(sys.executable).with_name("hmt"))


def test_hmt_sim_broker_upstox_serves_the_order_book() -> None:
    process = subprocess.Popen(
        [HMT, "sim", "--broker", "upstox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        settings = {}
        while len(settings) < 7:
            line = process.stdout.readline()
            assert line, "hmt sim exited before printing its settings"
            name, _, value = line.strip().partition("=")
            settings[name] = value
        # Enough for the engine: paper mode speaking Upstox to this simulator.
        assert (settings["HMT_BROKER"], settings["HMT_PAPER_BROKER"]) == ("paper", "upstox")
        url = settings["HMT_UPSTOX_API_URL"]
        assert url.startswith("http://127.0.0.1:")
        token = settings["HMT_UPSTOX_ACCESS_TOKEN"]
        answer = httpx.get(
            f"{url}/v2/order/retrieve-all", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.json() == {"status": "success", "data": []}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_an_unknown_broker_is_refused_by_name() -> None:
    done = subprocess.run(
        [HMT, "sim", "--broker", "fyers", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--broker 'fyers' is not one of kite, upstox" in done.stderr
