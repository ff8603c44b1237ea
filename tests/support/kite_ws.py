"""A small Kite-ticker-speaking WebSocket server on loopback, for the client's tests.

It checks api_key/access_token on the handshake (HTTP 403 otherwise, as Kite
does), reads subscribe/unsubscribe/mode messages, answers a `mode` with a
snapshot tick per token (as Kite sends the current quote), pushes ticks in each
connection's modes, sends heartbeats, and can stall or drop its connections.
It uses hmt's own encoder; the simulator (a separate issue) keeps its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from hmt.kite.segments import INDICES_SEGMENT
from hmt.kite.ticker_messages import BadText, ClientCommand, decode_client_text
from hmt.kite.ticker_protocol import HEARTBEAT, encode_frame
from hmt.kite.ticks import FullTick, IndexTick, LtpTick, Mode, QuoteTick, Tick

API_KEY = "test-api-key"
GOOD_TOKEN = "good-access-token"
EXCHANGE_TIME = 1_625_461_887
# The server's own log (Kite's side of the wire): it prints request paths, tokens included.
SERVER_LOG = logging.getLogger("tests.support.kite_ws")


def tick_for(token: int, mode: Mode, price: int) -> Tick:
    """A plausible tick of `token` at `price` (wire units) in `mode`."""
    if mode is Mode.LTP:
        return LtpTick(token, price)
    low, open_, close = max(price - 10, 0), max(price - 5, 0), max(price - 7, 0)
    if token & 0xFF == INDICES_SEGMENT:
        stamp = EXCHANGE_TIME if mode is Mode.FULL else None
        return IndexTick(token, price, price + 10, low, open_, close, price - close, stamp)
    quote = (token, price, 1, price, 1000, 500, 600, open_, price + 10, low, close)
    if mode is Mode.QUOTE:
        return QuoteTick(*quote)
    depth = tuple(n for i in range(10) for n in (10 + i, open_ + i, 1 + i))
    return FullTick(*quote, EXCHANGE_TIME, 0, 0, 0, EXCHANGE_TIME, depth)


@dataclass(eq=False)
class ServerConn:
    """One client connection as the server sees it."""

    id: int
    ws: ServerConnection
    modes: dict[int, Mode] = field(default_factory=dict)
    commands: list[ClientCommand] = field(default_factory=list)


class KiteWsServer:
    """The test server; `async with KiteWsServer() as server: ... server.url ...`."""

    def __init__(self, *, heartbeat_s: float = 0.05, snapshot: bool = True) -> None:
        self.heartbeat_s = heartbeat_s
        self.snapshot = snapshot
        self.valid_tokens = {GOOD_TOKEN}
        self.prices: dict[int, int] = {}
        self.conns: list[ServerConn] = []
        self.handshakes = 0
        self.rejected = 0
        self.bad_messages: list[BadText] = []
        self.stalled = False  # True: send nothing (no heartbeats, no ticks)
        self._ids = itertools.count()
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> KiteWsServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._authorize,
            compression=None, ping_interval=None, max_size=2**22, logger=SERVER_LOG,
        )  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def subscriptions(self) -> dict[int, Mode]:
        """Every token some live connection carries, with its mode."""
        return {t: m for conn in self.conns for t, m in conn.modes.items()}

    def price_of(self, token: int) -> int:
        return self.prices.get(token, 100_000 + token % 997)

    async def push(self, prices: Mapping[int, int]) -> int:
        """Set prices and send them to every connection carrying them; frames sent."""
        self.prices.update(prices)
        sent = 0
        for conn in list(self.conns):
            ticks = [tick_for(t, conn.modes[t], p) for t, p in prices.items() if t in conn.modes]
            if ticks and await self._send(conn, encode_frame(ticks)):
                sent += 1
        return sent

    async def send_all(self, data: bytes | str) -> None:
        """Send raw data (a garbled frame, a text message) to every connection."""
        for conn in list(self.conns):
            await self._send(conn, data)

    async def drop_all(self, code: int = 1011) -> None:
        """Close every connection from the server's side."""
        for conn in list(self.conns):
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.close(code, "test server drops")

    def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        query = parse_qs(urlsplit(request.path).query)
        if query.get("api_key") != [API_KEY] or query.get("access_token", [""])[0] not in (
            self.valid_tokens
        ):
            self.rejected += 1
            return Response(HTTPStatus.FORBIDDEN, "Forbidden", Headers(), b"invalid token\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = ServerConn(next(self._ids), ws)
        self.conns.append(conn)
        beat = asyncio.create_task(self._heartbeats(conn))
        try:
            async for message in ws:
                if isinstance(message, str):
                    await self._command(conn, message)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            self.conns.remove(conn)

    async def _command(self, conn: ServerConn, message: str) -> None:
        command = decode_client_text(message)
        if isinstance(command, BadText):
            self.bad_messages.append(command)
            return
        conn.commands.append(command)
        if command.action == "subscribe":
            for token in command.tokens:
                conn.modes.setdefault(token, Mode.QUOTE)  # Kite's default mode
        elif command.action == "unsubscribe":
            for token in command.tokens:
                conn.modes.pop(token, None)
        else:
            assert command.mode is not None
            for token in command.tokens:
                if token in conn.modes:
                    conn.modes[token] = command.mode
            if self.snapshot:
                await self._snapshot(conn, command.tokens, command.mode)

    async def _snapshot(self, conn: ServerConn, tokens: Iterable[int], mode: Mode) -> None:
        ticks = [tick_for(t, mode, self.price_of(t)) for t in tokens if t in conn.modes]
        for start in range(0, len(ticks), 1000):
            await self._send(conn, encode_frame(ticks[start : start + 1000]))

    async def _heartbeats(self, conn: ServerConn) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self._send(conn, HEARTBEAT)

    async def _send(self, conn: ServerConn, data: bytes | str) -> bool:
        if self.stalled:
            return False
        try:
            await conn.ws.send(data)
        except ConnectionClosed:
            return False
        return True
