"""An asyncio TCP proxy on loopback that can cut, reset, stall or refuse connections.

toxiproxy is not available here; this is the same idea in ~150 lines, after
asyncpg's `_testbase/fuzzer.py`. Put it between a client and a server on
127.0.0.1 and break the path on demand:

- `cut()`: close every open connection (FIN to both sides);
- `reset()`: abort every open connection with an RST;
- `stall()`: stop forwarding in both directions, sockets left open (a silent
  partition: nothing arrives and nothing says so); `heal()` lets new
  connections through again, stalled ones stay dead;
- `drop_next = k`: the next k connections are read and closed before a byte
  reaches the server (the handshake is lost);
- `flap_after_s = t`: every new connection is cut t seconds after it opens;
- `refuse()` / `listen()`: stop listening (connects are refused) and start again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

from hmt.waits import within


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    stalled: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, *, reset: bool = False) -> None:
        for writer in (self.client, self.server):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # SO_LINGER 0: close() sends an RST instead of a FIN.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()
            else:
                writer.close()


class FaultProxy:
    """`async with FaultProxy(upstream_port) as proxy: ... proxy.port ...`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self.accept_times: list[float] = []  # time.monotonic() of each accepted connection
        self.dropped = 0
        self.drop_next = 0
        self.flap_after_s: float | None = None
        self._stall_new = False
        self._pairs: list[_Pair] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pair in list(self._pairs):
            pair.close(reset=True)
        await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def cut(self) -> None:
        for pair in list(self._pairs):
            pair.close()

    def reset(self) -> None:
        for pair in list(self._pairs):
            pair.close(reset=True)

    def stall(self) -> None:
        self._stall_new = True
        for pair in self._pairs:
            pair.stalled = True

    def heal(self) -> None:
        self._stall_new = False

    async def refuse(self) -> None:
        """Stop listening and cut every open connection: new connects get ECONNREFUSED."""
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    async def listen(self) -> None:
        """Listen again, on the same port, after `refuse()`."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.accept_times.append(time.monotonic())
        if self.drop_next > 0:
            self.drop_next -= 1
            self.dropped += 1
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await within(reader.read(65536), 1)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pair = _Pair(writer, up_writer, stalled=self._stall_new)
        self._pairs.append(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(pair, reader, up_writer)),
            asyncio.create_task(self._pump(pair, up_reader, writer)),
        ]
        if self.flap_after_s is not None:
            asyncio.get_running_loop().call_later(self.flap_after_s, pair.close)
        await asyncio.gather(*pair.tasks, return_exceptions=True)
        pair.close()
        self._pairs.remove(pair)

    async def _pump(
        self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                if pair.stalled:
                    continue  # a partition loses what it is sent
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            # One side ended: end the other, as a real connection would.
            pair.close()
