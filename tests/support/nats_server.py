"""A private nats-server (JetStream on) per test, on a free loopback port.

Tests that kill, cut or restart NATS start their own server rather than touch
the shared one on 4222. Under CI a missing `nats-server` binary fails the test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.engine_process import free_port
from tests.support.services import unavailable


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def nats_server(store_dir: Path) -> Iterator[int]:
    """Start `nats-server -js` on a free port with its store in `store_dir`; yield the port."""
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if binary is None:
        unavailable("nats-server is not installed (Debian package nats-server)")
    assert binary is not None
    port = free_port()
    log = (store_dir / "nats.log").open("w")
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                unavailable(f"nats-server did not start: {(store_dir / 'nats.log').read_text()}")
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


SHARED_NATS_PORT = 4222


def shared_nats_url() -> str:
    """The machine's NATS (127.0.0.1:4222, started by .ci/run); fails under CI if absent."""
    if not _accepts(SHARED_NATS_PORT):
        unavailable(f"NATS is not listening on 127.0.0.1:{SHARED_NATS_PORT}")
    return f"nats://127.0.0.1:{SHARED_NATS_PORT}"
