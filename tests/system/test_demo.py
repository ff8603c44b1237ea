"""`make run`'s command on a fresh directory: sample triggers fire in the paper brokers,
Kite's and Upstox's, in one engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.children import interruptible

HMT = Path(sys.executable).with_name("hmt")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_demo_fires_a_trigger_within_a_minute(tmp_path: Path) -> None:
    """`hmt demo` serves the API, prints a token last; within 60 s a sample trigger is placed
    on each broker by the one engine: Kite's (the default account) and Upstox's (the
    linked account `demo-upstox`)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
    with subprocess.Popen(
        [str(HMT), "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=interruptible,
    ) as process:
        try:
            before, token = _token(process)
            assert "on Upstox (account demo-upstox)" in before, before
            waited = _first_placed(port, token, "default")
            upstox_waited = _first_placed(port, token, "demo-upstox")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    print(
        f"demo: first trigger placed {waited:.1f} s after the API was up (Kite), "
        f"then {upstox_waited:.1f} s more (Upstox)"
    )
    assert process.returncode == 0, "Ctrl-C stops the demo cleanly"
    assert (tmp_path / "hmt-demo.db").exists()


def _token(process: subprocess.Popen[str]) -> tuple[str, str]:
    """What came before the token's announcement, and the token: the line after it."""
    assert process.stdout is not None
    before = ""
    for line in process.stdout:
        if "token" in line:
            token = process.stdout.readline().strip()
            assert token.startswith("hmt_")
            return before, token
        before += line
    raise AssertionError(f"demo exited early with {process.wait()}")


def _first_placed(port: int, token: str, account: str) -> float:
    """Seconds until a trigger of `account` is placed (with its order id)."""
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while time.monotonic() - started < 60:
            triggers = client.get("/triggers", headers={"Authorization": f"Bearer {token}"})
            placed = [
                t for t in triggers.json() if t["status"] == "placed" and t["account"] == account
            ]
            if placed:
                assert all(t["order_id"] for t in placed)
                return time.monotonic() - started
            time.sleep(0.5)
    raise AssertionError(f"no sample trigger of account {account!r} was placed within 60 s")
