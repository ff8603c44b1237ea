"""The Upstox portfolio stream client: order updates pushed as they happen (FACTS 5).

The fill sweep (`hmt.engine.fills`) polls the order book every
`HMT_FILL_SWEEP_MS`; this stream is the fast way: an order that completes is
heard of at once, so a bracket's exit arms without waiting for the next
sweep. The sweep stays the fallback: an update lost while the stream was down
is read from the book after it reconnects (the composition pokes the sweep on
`connected`).

Its loop, forever until `stop`, as `hmt.upstox.feed.UpstoxFeed`'s:

1. authorize: GET /v2/feed/portfolio-stream-feed/authorize?update_types=order
   for a single-use wss URL; a 401 means the token is invalid or expired, and
   the client waits in `token_invalid` until `set_access_token` gives it a new one;
2. connect to that URL and read JSON messages until the socket ends (nothing is
   sent: the stream starts by itself); aiohttp's heartbeat ends a half-open link;
3. back off (exponential, jittered: `hmt.upstox.feed.backoff_delay`) and start
   again at 1, with a fresh authorize (the URL was single use).

`parse_message` is the sans-I/O half: it never raises, and says what a message
was (an order update as an `OrderReport`, another kind of update, or a message
it could not read, counted by reason). The access token is never logged, and
the authorized URL (which carries a one-time code) is logged without its query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
import structlog

from hmt.core.broker import BrokerError, OrderReport
from hmt.upstox.feed import backoff_delay
from hmt.upstox.orders import report_from_row
from hmt.upstox.rest import API_URL

log = structlog.get_logger("hmt.upstox.portfolio")

AUTHORIZE_PATH = "/v2/feed/portfolio-stream-feed/authorize"
UPDATE_TYPES = "order"  # positions, holdings and GTT rules are not hmt's business

OnOrder = Callable[[OrderReport], object]
OnState = Callable[["StreamState"], object]


class StreamState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 -- a state's name, not a secret


class Kind(StrEnum):
    ORDER = "order"
    OTHER = "other"  # another update_type (gtt_order, position, holding): skipped
    BAD = "bad"  # not JSON, not an object, or an order update without an order id


@dataclass(frozen=True, slots=True)
class Message:
    """What one message of the stream was."""

    kind: Kind
    report: OrderReport | None = None  # for ORDER
    why: str = ""  # OTHER: its update_type; BAD: the reason, for a counter


def parse_message(data: str | bytes) -> Message:
    """One message of the portfolio stream, read; never raises (FACTS 5.2).

    An order update is an order-book row with `update_type: "order"`, so it is
    read by `report_from_row`, as the book's rows are: the status upper-cased to
    the core's words, the tag, the filled quantity, the instrument's id.
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Message(Kind.BAD, why="not json")
    if not isinstance(body, dict):
        return Message(Kind.BAD, why="not an object")
    kind = body.get("update_type")
    # The webhook's older sample has no update_type; an order row is still an order.
    if kind not in (None, "order"):
        return Message(Kind.OTHER, why=str(kind)[:40])
    row = body
    if not isinstance(body.get("instrument_token"), str) and isinstance(
        body.get("instrument_key"), str
    ):
        row = {**body, "instrument_token": body["instrument_key"]}  # the twin may go
    try:
        report = report_from_row(row)
    except BrokerError:
        return Message(Kind.BAD, why="no order id")
    if not report.status:
        return Message(Kind.BAD, why="no status")
    return Message(Kind.ORDER, report)


@dataclass(slots=True)
class StreamStats:
    state: StreamState = StreamState.STOPPED
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    orders: int = 0  # order updates handed on
    other: int = 0  # updates of other kinds, skipped
    bad_messages: Counter[str] = field(default_factory=Counter)
    last_message_at: float | None = None  # time.monotonic(); None before one


class UpstoxPortfolio:
    """The portfolio stream: one connection, order updates to `on_order`."""

    def __init__(
        self,
        access_token: str,
        *,
        on_order: OnOrder,
        api_url: str = API_URL,
        on_state: OnState | None = None,
        reconnect_delay_s: float = 1.0,
        reconnect_max_delay_s: float = 60.0,
        jitter: float = 0.2,
        heartbeat_s: float = 10.0,
        open_timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if reconnect_delay_s <= 0 or reconnect_max_delay_s < reconnect_delay_s:
            raise ValueError("need 0 < reconnect_delay_s <= reconnect_max_delay_s")
        if not 0 <= jitter < 1 or heartbeat_s <= 0 or open_timeout_s <= 0:
            raise ValueError("need 0 <= jitter < 1, heartbeat_s > 0 and open_timeout_s > 0")
        self._api = api_url.rstrip("/")
        self._token = access_token
        self._on_order = on_order
        self._on_state = on_state
        self._base_s, self._cap_s, self._jitter = reconnect_delay_s, reconnect_max_delay_s, jitter
        self._heartbeat_s, self._open_timeout_s = heartbeat_s, open_timeout_s
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._token_changed = asyncio.Event()
        self.stats = StreamStats()

    @property
    def connected(self) -> bool:
        return self.stats.state is StreamState.CONNECTED

    def _move(self, state: StreamState) -> None:
        if state is self.stats.state:
            return
        self.stats.state = state
        if self._on_state is not None:
            self._on_state(state)

    def set_access_token(self, access_token: str) -> None:
        self._token = access_token
        self._token_changed.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._move(StreamState.STOPPED)

    async def run(self) -> None:
        """The loop itself (what `start` runs; a supervisor may run it instead)."""
        attempt = 0
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._open_timeout_s)
            ) as http:
                while True:
                    self._move(StreamState.CONNECTING if attempt == 0 else StreamState.RECONNECTING)
                    url = await self._authorize(http)
                    if url is not None and await self._connection(http, url):
                        attempt = 0  # it was up: the next failure starts the backoff afresh
                    attempt += 1
                    self.stats.reconnects += 1
                    await asyncio.sleep(
                        backoff_delay(attempt, self._base_s, self._cap_s, self._jitter, self._rng)
                    )
        finally:
            self._move(StreamState.STOPPED)

    async def _authorize(self, http: aiohttp.ClientSession) -> str | None:
        """The single-use wss URL, or None after a failure (the loop backs off)."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with http.get(
                self._api + AUTHORIZE_PATH, headers=headers, params={"update_types": UPDATE_TYPES}
            ) as answer:
                if answer.status == 401:
                    await self._wait_for_token()
                    return None
                body = await answer.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("portfolio_authorize_failed", error=type(exc).__name__)
            return None
        data = body.get("data") if isinstance(body, dict) else None
        url = data.get("authorized_redirect_uri") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            log.warning("portfolio_authorize_unreadable", status=answer.status)
            return None
        return url

    async def _wait_for_token(self) -> None:
        self._move(StreamState.TOKEN_INVALID)
        log.warning("portfolio_token_invalid")
        self._token_changed.clear()
        await self._token_changed.wait()

    async def _connection(self, http: aiohttp.ClientSession, url: str) -> bool:
        """One connection, to its end; whether it got as far as being connected."""
        try:
            ws = await http.ws_connect(
                url,
                heartbeat=self._heartbeat_s,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._open_timeout_s),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning(
                "portfolio_connect_failed", url=url.split("?", 1)[0], error=type(exc).__name__
            )
            return False
        self.stats.connects += 1
        self._move(StreamState.CONNECTED)
        try:
            async for message in ws:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.on_message(message.data)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.warning("portfolio_connection_lost", error=type(exc).__name__)
        finally:
            await ws.close()
            self._move(StreamState.RECONNECTING)  # not connected while it backs off
        return True

    def on_message(self, data: str | bytes) -> None:
        """One message: counted, and an order update handed on."""
        self.stats.messages += 1
        self.stats.last_message_at = time.monotonic()
        message = parse_message(data)
        if message.kind is Kind.BAD:
            self.stats.bad_messages[message.why] += 1
            return
        if message.kind is Kind.OTHER:
            self.stats.other += 1
            return
        assert message.report is not None
        self.stats.orders += 1
        try:
            self._on_order(message.report)
        except Exception:
            # The sweep reads this order from the book later: the stream must stay up.
            log.exception("portfolio_order_update_failed", order_id=message.report.order_id)
