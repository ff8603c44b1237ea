"""The API and the engine of one `hmt run` (or `hmt demo`), started and stopped in order.

HMT_API_LOOP=thread (the default): the API listens first, on its own thread
(`hmt.api.serving.ApiThread`), so /health answers while the engine loads;
then the runtime starts on this loop; on the way out the API stops first
(requests in flight finish), then the runtime closes. HMT_API_LOOP=engine:
as before issue 12, uvicorn on this loop, the runtime started and closed by
the app's lifespan; kept to measure the difference (docs/engine.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from hmt.api.app import create_app
from hmt.api.serving import ApiThread
from hmt.compose import bridge
from hmt.config import ApiLoop
from hmt.engine.bridge import EngineLoop
from hmt.engine.runtime import Runtime


@dataclass
class Served:
    """A listening API: its port, and a task that ends when the server does."""

    port: int
    done: asyncio.Future[None]


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, *, host: str, port: int) -> AsyncIterator[Served]:
    """The API over `runtime`, listening, and the runtime started; both stopped on exit."""
    if runtime.settings.api_loop is ApiLoop.ENGINE:
        server = uvicorn.Server(
            uvicorn.Config(create_app(runtime), host=host, port=port, log_config=None)
        )
        task = asyncio.create_task(server.serve())
        # uvicorn offers a flag, not an event, for "listening".
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if task.done():
            await task  # raises why it could not start (a port in use, say)
            raise RuntimeError("the API stopped before it listened")
        try:
            yield Served(server.servers[0].sockets[0].getsockname()[1], task)
        finally:
            server.should_exit = True
            await task
        return
    engine_loop = EngineLoop(asyncio.get_running_loop())
    api = ApiThread(lambda: bridge(runtime, engine_loop), host=host, port=port)
    try:
        await api.start()
    except BaseException:
        await runtime.close()
        raise
    assert api.port is not None
    try:
        await runtime.start()
        yield Served(api.port, asyncio.ensure_future(api.wait()))
    finally:
        await api.stop()
        await runtime.close()
