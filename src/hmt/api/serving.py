"""Serving the API on a thread and event loop of its own (HMT_API_LOOP=thread).

The engine's loop evaluates ticks and sends orders; a request's parsing,
validation, database round trip and JSON, on that same loop, delayed every
tick behind it (issue 12: 150 creates/s took tick-to-order p99 from 21 ms to
2.3 s). `ApiThread` runs uvicorn with `create_app` on its own thread and loop,
over a `Facade` made there (its own database connections; engine calls handed
to the engine's loop: `hmt.engine.bridge`). docs/engine.md has the measurements
behind the choice of a thread over a process.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable

import uvicorn

from hmt.api.app import create_app
from hmt.engine.facade import Facade
from hmt.logs import get_logger

log = get_logger("hmt.api")

# The interpreter's GIL switch interval while the API runs on its own thread. At
# CPython's default (5 ms) a busy API thread may hold the engine's thread off the
# GIL for that long after a tick arrives; 0.5 ms bounds that wait (docs/engine.md).
SWITCH_INTERVAL_S = 0.0005


class ApiThread:
    """uvicorn serving the API on its own thread; `start` returns once it listens."""

    def __init__(
        self, make_facade: Callable[[], Awaitable[Facade]], *, host: str, port: int
    ) -> None:
        """`make_facade` runs on the API's loop: what it opens belongs to that loop."""
        self._make_facade = make_facade
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._main, name="hmt-api", daemon=True)
        self._ready = threading.Event()  # listening, or failed to
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self.port: int | None = None  # where it listens (HMT_PORT 0: a free port)
        self.switch_interval: float | None = SWITCH_INTERVAL_S  # the GIL's while it runs
        self._previous_interval = sys.getswitchinterval()

    async def start(self, within: float = 60.0) -> None:
        """Start the thread and wait until it listens; raises why it could not."""
        self._previous_interval = sys.getswitchinterval()
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, within)
        if self._error is not None:
            raise self._error
        if self.port is None:
            raise RuntimeError(f"the API did not start listening within {within} s")

    @property
    def running(self) -> bool:
        """Still serving (False once it stopped, or failed)."""
        return self._thread.is_alive()

    async def wait(self) -> None:
        """Until the server stops (asked to, or failed)."""
        await asyncio.to_thread(self._thread.join)

    async def stop(self) -> None:
        """Stop serving (in-flight requests finish first) and join the thread."""
        if self._server is not None:
            self._server.should_exit = True  # uvicorn polls it on its own loop
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        sys.setswitchinterval(self._previous_interval)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # SystemExit too: uvicorn exits when it cannot bind
            self._error = error
            log.error("api_thread_failed", error=type(error).__name__, reason=str(error))
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        facade = await self._make_facade()
        config = uvicorn.Config(
            create_app(facade), host=self._host, port=self._port, log_config=None
        )
        self._server = server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        # uvicorn offers a flag, not an event, for "listening".
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            self.port = server.servers[0].sockets[0].getsockname()[1]
            self._ready.set()
        await serving
