"""The whole system served from a background thread, for synchronous test drivers.

schemathesis and Hypothesis's `@given` run synchronously; this keeps the
simulator, the runtime and uvicorn on their own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.support.system import System, running_system


class Live:
    """The whole system on its own event loop in a thread, for synchronous schemathesis."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        self.database_url = database_url
        self.overrides = overrides
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.system: System | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with running_system(self.database_url, **self.overrides) as system:
            self.system = system
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> System:
        self._thread.start()
        assert self.ready.wait(60), "the system did not start"
        assert self.system is not None
        return self.system

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self.loop.close()

    def run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)
