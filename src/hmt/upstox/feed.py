"""The Upstox v3 market-data feed client: one WebSocket that stays up and hands prices on.

Upstox allows one feed connection per app and user (FACTS 1.3), so this
client keeps exactly one. Its loop, forever until `stop`:

1. authorize: GET /v3/feed/market-data-feed/authorize for a single-use wss
   URL (FACTS 1.1); a 401 means the token is invalid or expired, and the
   client waits in `token_invalid` until `set_access_token` gives it a new one;
2. connect to that URL, send every subscribed key in its mode, and read
   frames until the socket ends; aiohttp's heartbeat pings the server and
   closes a connection whose pong does not come (a half-open TCP link never
   ends by itself);
3. wait out an exponential backoff with jitter, and start again at 1 (the
   URL was single use).

Prices go to `on_ltp(instrument id, units)` as ints in the instrument's units
(`prices.to_units` with the divisor the composition gives per id); a frame
that does not decode is counted by its first words and skipped. The access
token is never logged, and the authorized URL (which carries a one-time code)
is logged without its query string.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
import structlog

from hmt.upstox.feed_codec import FeedError, Method, Mode, decode_frame, request
from hmt.upstox.prices import to_units
from hmt.upstox.rest import API_URL

log = structlog.get_logger("hmt.upstox.feed")

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
MAX_KEYS = {Mode.LTPC: 5000, Mode.OPTION_GREEKS: 3000, Mode.FULL: 2000, Mode.FULL_D30: 2000}
BATCH = 500  # keys per request: keeps each message small

OnLtp = Callable[[int, int], object]
OnState = Callable[["FeedState"], object]


class FeedState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 -- a state's name, not a secret


class SubscriptionLimitError(ValueError):
    """More keys than Upstox lets one connection carry in this mode (FACTS 1.3)."""


@dataclass(slots=True)
class FeedStats:
    """What /health and /stats will show for this feed (mapped by the composition)."""

    state: FeedState = FeedState.STOPPED
    connects: int = 0
    reconnects: int = 0
    frames: int = 0
    ticks: int = 0  # prices handed on
    bad_frames: Counter[str] = field(default_factory=Counter)
    unknown_keys: int = 0
    last_frame_at: float | None = None  # time.monotonic() of the last frame; None before one

    @property
    def last_frame_age_s(self) -> float | None:
        return None if self.last_frame_at is None else time.monotonic() - self.last_frame_at


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, jitter: float, rng: random.Random
) -> float:
    """The wait before reconnect number `attempt` (1, 2, ...): doubling, capped, jittered."""
    delay = min(cap_s, base_s * (1 << min(max(0, attempt - 1), 30)))
    return delay * (1 + rng.uniform(-jitter, jitter))


class UpstoxFeed:
    """The Upstox feed client, as the engine's `Feed` port (subscribe by instrument id)."""

    def __init__(
        self,
        access_token: str,
        *,
        key_for: Callable[[int], str],
        divisor_for: Callable[[int], int],
        on_ltp: OnLtp,
        api_url: str = API_URL,
        on_state: OnState | None = None,
        mode: Mode = Mode.LTPC,
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
        self._key_for = key_for
        self._divisor_for = divisor_for
        self._on_ltp = on_ltp
        self._on_state = on_state
        self._mode = mode
        self._base_s, self._cap_s, self._jitter = reconnect_delay_s, reconnect_max_delay_s, jitter
        self._heartbeat_s, self._open_timeout_s = heartbeat_s, open_timeout_s
        self._rng = rng or random.Random()
        self._keys: dict[str, int] = {}  # key -> instrument id
        self._divisors: dict[int, int] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._token_changed = asyncio.Event()
        self.stats = FeedStats()

    # --- subscriptions ------------------------------------------------------------

    def subscribe(self, tokens: Iterable[int]) -> None:
        """Carry these instruments; SubscriptionLimitError (and no change) past the limit."""
        added = {self._key_for(token): token for token in tokens}
        fresh = {key: token for key, token in added.items() if key not in self._keys}
        if len(self._keys) + len(fresh) > MAX_KEYS[self._mode]:
            raise SubscriptionLimitError(
                f"{len(self._keys) + len(fresh)} instruments exceed Upstox's "
                f"{MAX_KEYS[self._mode]} for {self._mode} on one connection"
            )
        for key, token in fresh.items():
            self._keys[key] = token
            self._divisors[token] = self._divisor_for(token)
        if fresh:
            self._send_later(Method.SUBSCRIBE, list(fresh))

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        gone = [key for key in map(self._key_for, tokens) if key in self._keys]
        for key in gone:
            self._divisors.pop(self._keys.pop(key), None)
        if gone:
            self._send_later(Method.UNSUBSCRIBE, gone)

    def subscriptions(self) -> dict[str, int]:
        return dict(self._keys)

    def _send_later(self, method: Method, keys: list[str]) -> None:
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._send(method, keys))

    async def _send(self, method: Method, keys: list[str]) -> None:
        mode = None if method is Method.UNSUBSCRIBE else self._mode
        for at in range(0, len(keys), BATCH):
            if self._ws is None or self._ws.closed:
                return  # the next connection sends every key again
            await self._ws.send_bytes(request(method, keys[at : at + BATCH], mode))

    # --- lifecycle ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.stats.state is FeedState.CONNECTED

    def _move(self, state: FeedState) -> None:
        """Enter `state`; `on_state` hears of each change (the session, missed touches)."""
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
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._move(FeedState.STOPPED)

    async def _run(self) -> None:
        attempt = 0
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._open_timeout_s)
        ) as http:
            while True:
                self._move(FeedState.CONNECTING if attempt == 0 else FeedState.RECONNECTING)
                url = await self._authorize(http)
                if url is not None and await self._connection(http, url):
                    attempt = 0  # it was up: the next failure starts the backoff afresh
                attempt += 1
                self.stats.reconnects += 1
                await asyncio.sleep(
                    backoff_delay(attempt, self._base_s, self._cap_s, self._jitter, self._rng)
                )

    async def _authorize(self, http: aiohttp.ClientSession) -> str | None:
        """The single-use wss URL, or None after a failure (the loop backs off)."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with http.get(self._api + AUTHORIZE_PATH, headers=headers) as answer:
                if answer.status == 401:
                    await self._wait_for_token()
                    return None
                body = await answer.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("feed_authorize_failed", error=type(exc).__name__)
            return None
        data = body.get("data") if isinstance(body, dict) else None
        url = data.get("authorized_redirect_uri") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            log.warning("feed_authorize_unreadable", status=answer.status)
            return None
        return url

    async def _wait_for_token(self) -> None:
        self._move(FeedState.TOKEN_INVALID)
        log.warning("feed_token_invalid")
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
            log.warning("feed_connect_failed", url=url.split("?", 1)[0], error=type(exc).__name__)
            return False
        self._ws = ws
        self.stats.connects += 1
        self._move(FeedState.CONNECTED)
        try:
            await self._send(Method.SUBSCRIBE, list(self._keys))
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY:
                    self._on_frame(message.data)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.warning("feed_connection_lost", error=type(exc).__name__)
        finally:
            self._ws = None
            await ws.close()
            self._move(FeedState.RECONNECTING)  # not connected while it backs off
        return True

    def _on_frame(self, frame: bytes) -> None:
        self.stats.frames += 1
        self.stats.last_frame_at = time.monotonic()
        try:
            decoded = decode_frame(frame)
            prices = [
                (token, to_units(ltp, self._divisors[token]))
                for key, ltp in decoded.prices
                if (token := self._keys.get(key)) is not None
            ]
        except FeedError as exc:
            self.stats.bad_frames[str(exc).split(":", 1)[0][:40]] += 1
            return
        self.stats.unknown_keys += len(decoded.prices) - len(prices)
        self.stats.ticks += len(prices)
        for token, units in prices:
            self._on_ltp(token, units)
