"""`hmt run` as a real child process, configured only by environment variables.

The simulator stays in the test process (it plays Kite, which does not crash
with the engine) so its order book can be read directly; the engine is the
operator's own command, started, killed and restarted like a real deployment.
Its output goes to a file, shown when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hmt import waits
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from tests.support.brokers import SimSide
from tests.support.eventually import eventually

# The console script the package installs: exactly what an operator runs.
_SCRIPT = Path(sys.executable).with_name("hmt")
COMMAND = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "from hmt.cli import app; app(prog_name='hmt')"]
)


def free_port() -> int:
    """A port nothing listens on now (the engine binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def engine_env(
    sim: Simulator | UpstoxSim,
    database_url: str,
    port: int,
    failpoints: str = "",
    **settings: object,
) -> dict[str, str]:
    """The environment of `hmt run`: this process's, minus any HMT_*, plus the given ones
    (paper mode on `sim`, Kite's or Upstox's simulator)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
    values: dict[str, object] = {
        "database_url": database_url,
        **SimSide(sim).settings(),
        "port": port,
        "reconnect_delay_ms": 50,
        "retry_backoff_ms": 20,
        "health_check_interval_ms": 200,
        **settings,
    }
    env.update({f"HMT_{name.upper()}": str(value) for name, value in values.items()})
    if failpoints:
        env["HMT_FAILPOINTS"] = failpoints
    return env


@dataclass
class EngineProcess:
    """One `hmt run` child: its pid, API port and log."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path
    spawned: float = field(default_factory=time.perf_counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def output(self, last: int = 4000) -> str:
        """The tail of the process's stdout and stderr."""
        try:
            return self.log.read_text(errors="replace")[-last:]
        except FileNotFoundError:
            return ""

    def events(self, name: str) -> list[dict[str, object]]:
        """The process's JSON log lines whose event is `name`."""
        found = []
        for line in self.output(last=1 << 30).splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == name:
                    found.append(entry)
        return found

    async def ready(self, within: float = 30.0) -> float:
        """Wait until /health answers (recovery is done by then); seconds since spawn."""
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:

            async def answers() -> bool:
                if not self.alive:
                    raise AssertionError(
                        f"hmt run exited {self.proc.returncode} before serving:\n{self.output()}"
                    )
                try:
                    response = await client.get("/health")
                except httpx.TransportError:
                    return False
                return response.status_code in (200, 503)

            await eventually(answers, within=within, interval=0.02)
        return time.perf_counter() - self.spawned

    async def exited(self, within: float = 30.0) -> int:
        """The exit code, once the process has ended."""
        try:
            return await waits.within(self.proc.wait(), within)
        except TimeoutError:
            message = f"hmt run still running after {within} s:\n{self.output()}"
            raise AssertionError(message) from None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM (the graceful stop) and wait for the exit."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGTERM)
        return await self.exited(within)


@contextlib.asynccontextmanager
async def engine_process(
    sim: Simulator | UpstoxSim,
    database_url: str,
    log_dir: Path,
    *,
    name: str = "engine",
    failpoints: str = "",
    **settings: object,
) -> AsyncIterator[EngineProcess]:
    """Start `hmt run`; on leaving, SIGKILL it if it is still running."""
    port = free_port()
    log = log_dir / f"{name}.log"
    env = engine_env(sim, database_url, port, failpoints, **settings)
    with log.open("wb") as out:
        spawned = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, "run", "--json-logs", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    engine = EngineProcess(proc, port, log, spawned)
    try:
        yield engine
    finally:
        engine.kill()
        await proc.wait()
