"""`make run`'s command on a fresh directory: sample triggers fire in the paper brokers,
Kite's and Upstox's."""

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
    """`hmt demo` serves the API, prints a token last; a sample trigger is placed within 60 s,
    on the Kite engine and on the Upstox engine (the next port, its own token)."""
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
            waited = _first_placed(port, token)
            upstox_token = _after(before, "its demo user signs in with")
            assert f"Upstox engine: http://127.0.0.1:{port + 1}" in before
            upstox_waited = _first_placed(port + 1, upstox_token)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    print(
        f"demo: first trigger placed {waited:.1f} s after the API was up (Kite), "
        f"then {upstox_waited:.1f} s more (Upstox)"
    )
    assert process.returncode == 0, "Ctrl-C stops the demo cleanly"
    assert (tmp_path / "hmt-demo.db").exists()
    assert (tmp_path / "hmt-demo-upstox.db").exists()


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


def _after(text: str, marker: str) -> str:
    """The word after `marker` in `text`."""
    _, found, tail = text.partition(marker)
    assert found, f"{marker!r} not in the demo's output:\n{text}"
    return tail.split()[0]


def _first_placed(port: int, token: str) -> float:
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while time.monotonic() - started < 60:
            triggers = client.get("/triggers", headers={"Authorization": f"Bearer {token}"})
            placed = [t for t in triggers.json() if t["status"] == "placed"]
            if placed:
                assert all(t["order_id"] for t in placed)
                return time.monotonic() - started
            time.sleep(0.5)
    raise AssertionError("no sample trigger was placed within 60 s")
