"""Read a Server-Sent Events stream (the API's /stream) into a list, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Received:
    """Every event one stream delivered, in order, as (name, data)."""

    status: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == name]


@contextlib.asynccontextmanager
async def listening(client: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[Received]:
    """Open /stream with `headers` and collect its events until the block ends."""
    received = Received()

    async def read() -> None:
        async with client.stream("GET", "/stream", headers=headers, timeout=None) as response:
            received.status = response.status_code
            name, data = "message", ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
                elif line == "" and data:
                    received.events.append((name, json.loads(data)))
                    name, data = "message", ""

    task = asyncio.create_task(read())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
