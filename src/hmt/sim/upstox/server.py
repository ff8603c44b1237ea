"""An Upstox-compatible simulator on loopback: REST, OAuth2 login, the protobuf feed, the
portfolio stream's JSON order updates.

One aiohttp application serves what Upstox spreads over api.upstox.com,
api-hft.upstox.com and the feed's wss host (docs/upstox/FACTS.md), so the
official SDK works against it with `host` and `order_host` both set to
`api_url`. Faults come from the Kite simulator's `FaultPlan` (same rules, same
seeding); a Kite error type in a rule is answered as the Upstox error that
means the same (`_UPSTOX_ERRORS`). Control endpoints live under /_sim/.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from hmt.sim.faults import Fault, FaultError, FaultKind, FaultPlan
from hmt.sim.upstox import universe, wire

_BAD_CLIENT = "Check your 'client_id' and 'redirect_uri'; one or both are incorrect."
# A Kite error type in a fault rule, as the Upstox error meaning the same (FACTS 2.7).
_UPSTOX_ERRORS: dict[str, tuple[int, str, str]] = {
    "TokenException": (401, "UDAPI100050", "Invalid token used to access API"),
    "InputException": (400, "UDAPI100036", "Invalid Input"),
    "OrderException": (400, "UDAPI1004", "Valid order type is required"),
    "MarginException": (400, "UDAPI100036", "Insufficient funds"),
    "GeneralException": (500, "UDAPI100500", "Something went wrong... please contact us"),
    "NetworkException": (503, "UDAPI100500", "Something went wrong... please contact us"),
    "DataException": (500, "UDAPI100500", "Something went wrong... please contact us"),
}
ORDER_WINDOWS = ((1.0, 10), (60.0, 500), (1800.0, 2000))  # FACTS 2.8
TERMINAL = frozenset({"complete", "rejected", "cancelled"})
PORTFOLIO_SOCKET_PATH = "/upstox-developer-api/order-updates/feed"
UPDATE_TYPES = frozenset({"order", "gtt_order", "position", "holding"})  # FACTS 5.1


class UpstoxError(Exception):
    def __init__(self, status: int, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path

    def response(self) -> web.Response:
        problem = {
            "errorCode": self.code,
            "message": self.message,
            "propertyPath": self.path,
            "invalidValue": None,
            "error_code": self.code,
            "property_path": self.path,
            "invalid_value": None,
        }
        return web.json_response({"status": "error", "errors": [problem]}, status=self.status)


def _invalid(path: str, message: str) -> UpstoxError:
    return UpstoxError(400, "UDAPI100038", message, path)


@dataclass
class Order:
    order_id: str
    key: str
    symbol: str
    exchange: str
    side: str
    order_type: str
    product: str
    validity: str
    quantity: int
    price: float
    trigger_price: float
    tag: str | None
    status: str
    average_price: float = 0.0
    filled_quantity: int = 0
    status_message: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Told of each status change (the simulator's portfolio stream).
    on_move: Callable[[Order], None] | None = field(default=None, repr=False, compare=False)
    placed_by: str = "SIMUSER"  # the user whose book it is in

    def row(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "product": self.product,
            "price": self.price,
            "quantity": self.quantity,
            "status": self.status,
            "guid": None,
            "tag": self.tag,
            "instrument_token": self.key,
            "placed_by": self.placed_by,
            "trading_symbol": self.symbol,
            "tradingsymbol": self.symbol,
            "order_type": self.order_type,
            "validity": self.validity,
            "trigger_price": self.trigger_price,
            "disclosed_quantity": 0,
            "transaction_type": self.side,
            "average_price": self.average_price,
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.quantity - self.filled_quantity,
            "status_message": self.status_message,
            "status_message_raw": self.status_message,
            "exchange_order_id": None if self.status == "rejected" else f"13{self.order_id}",
            "parent_order_id": None,
            "order_id": self.order_id,
            "variety": "SIMPLE",
            "order_timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "exchange_timestamp": None,
            "is_amo": False,
            "order_request_id": str(len(self.history)),
            "order_ref_id": None,
        }

    def move(self, status: str) -> None:
        self.status = status
        self.history.append(self.row())
        if self.on_move is not None:
            self.on_move(self)

    def update(self) -> dict[str, Any]:
        """This order as the portfolio stream sends it (FACTS 5.2): its book row with
        `update_type`, the user's id and the key under its current name."""
        row = self.row()
        return {
            "update_type": "order",
            "user_id": row["placed_by"],
            "userId": row["placed_by"],
            "instrument_key": self.key,
            **row,
        }


@dataclass
class _Link:
    """One feed connection and what it subscribed, by key and mode."""

    socket: web.WebSocketResponse
    request: web.Request
    modes: dict[str, str] = field(default_factory=dict)
    # A stall (`UpstoxSim.stall_feeds`): the keys whose moves wait, and its end's timer.
    stalled: bool = False
    held: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Stream:
    """One portfolio-stream connection: the update types it asked for, and what waits to
    be written to it (orders move inside synchronous handlers; a task writes)."""

    socket: web.WebSocketResponse
    request: web.Request
    types: frozenset[str]
    user_id: str  # whose token authorized it: it hears of that user's orders only
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


@dataclass
class UpstoxAccount:
    """Another Upstox user on the simulator (`UpstoxSim.add_account`): its own app (client
    id and secret), access token, order book and order rate limits, as Upstox keeps each
    user's. Its orders match against the same market; the simulator's own user is the
    first account (its attributes of the same names)."""

    user_id: str
    client_id: str
    client_secret: str
    access_token: str
    orders: dict[str, Order] = field(default_factory=dict)
    stamps: deque[float] = field(default_factory=deque)  # its order writes, for the limits

    def expire_session(self) -> str:
        """Its access token stops working (401); the new one (what its next login gives).
        The feed runs on the simulator's own user's token and is not touched."""
        self.access_token = f"sim-token-{secrets.token_hex(8)}"
        return self.access_token

    def order_rows(self) -> list[dict[str, Any]]:
        """Its order book, as GET /v2/order/retrieve-all answers it with its token."""
        return [order.row() for order in self.orders.values()]


class UpstoxSim:
    """The simulator's state and its aiohttp application."""

    def __init__(
        self,
        *,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        walk_every_s: float | None = None,
        instruments: Iterable[dict[str, Any]] | None = None,
    ) -> None:
        rng = random.Random(f"upstox:{seed}")
        self._walk_rng = random.Random(f"upstox-walk:{seed}")
        self._walk_every_s = walk_every_s
        self._walker: asyncio.Task[None] | None = None
        self.host, self.port = host, port
        self.user_id = "SIMUSER"
        self.client_id = f"sim-{rng.getrandbits(32):08x}"
        self.client_secret = f"{rng.getrandbits(64):016x}"
        self.redirect_uri = "http://127.0.0.1/upstox/callback"
        self.access_token = f"sim-token-{rng.getrandbits(64):016x}"
        self.faults = FaultPlan(seed)
        # `instruments`: master rows in Upstox's format, in place of the generated master's
        # (the engine bench's thousand instruments).
        rows = universe.INSTRUMENTS if instruments is None else instruments
        self.instruments = {row["instrument_key"]: row for row in rows}
        self._master = universe.master_json(list(self.instruments.values()))
        self.prices: dict[str, float] = {
            key: float(row["last_price"]) for key, row in self.instruments.items()
        }
        self.orders: dict[str, Order] = {}
        self._ids = itertools.count(int(f"26{rng.randrange(10**10):010d}"))
        self._seed = seed
        self.accounts: dict[str, UpstoxAccount] = {}  # the other users, by client id
        self._codes: dict[str, str] = {}  # login codes (single use): the client id each is for
        self._feed_codes: set[str] = set()  # authorized feed URLs: single use
        self._links: list[_Link] = []
        self._streams: list[_Stream] = []  # portfolio-stream connections
        # Authorized portfolio URLs (single use): the user each is for.
        self._stream_codes: dict[str, str] = {}
        self.stream_updates = 0  # order updates written to portfolio streams
        self._sends: set[asyncio.Task[None]] = set()  # held moves sent when a stall ends
        self.stamps: deque[float] = deque()  # this user's order writes, for the limits
        self.order_windows = ORDER_WINDOWS
        self.refused = 0
        self.counters: Counter[str] = Counter()  # requests by path, refused ones too
        # Timing hooks (bench/engine_sim_upstox.py): each request as it arrives, and the
        # keys of each feed frame just before it is written.
        self.on_request: Callable[[web.Request], None] | None = None
        self.on_frame: Callable[[list[str]], None] | None = None
        self.app = self._build()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> UpstoxSim:
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        if self._walk_every_s is not None:
            self._walker = asyncio.get_running_loop().create_task(self._walk(self._walk_every_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._walker is not None:
            self._walker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._walker
        for link in list(self._links):
            await link.socket.close()
        for stream in list(self._streams):
            await stream.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def feed_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v3/feed/market-data-feed"

    @property
    def portfolio_url(self) -> str:
        """The authorized portfolio stream's address (Upstox's path, FACTS 5.1)."""
        return f"ws://{self.host}:{self.port}{PORTFOLIO_SOCKET_PATH}"

    # -- application -----------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        routes = [
            web.get("/v2/login/authorization/dialog", self.dialog),
            web.post("/v2/login/authorization/token", self.token),
            web.get("/v3/feed/market-data-feed/authorize", self.authorize),
            web.get("/v3/feed/market-data-feed", self.feed),
            web.get("/v2/feed/portfolio-stream-feed/authorize", self.portfolio_authorize),
            web.get("/v2/feed/portfolio-stream-feed", self.portfolio_redirect),
            web.get(PORTFOLIO_SOCKET_PATH, self.portfolio),
            web.post("/v3/order/place", self.place),
            web.put("/v3/order/modify", self.modify),
            web.delete("/v3/order/cancel", self.cancel),
            web.get("/v2/order/retrieve-all", self.book),
            web.get("/v2/order/details", self.details),
            web.get("/v2/order/history", self.history),
            web.get("/market-quote/instruments/exchange/complete.json.gz", self.master),
            web.post("/_sim/faults", self.add_fault),
            web.delete("/_sim/faults", self.clear_faults),
            web.post("/_sim/price", self.set_price),
            web.post("/_sim/expire", self.expire),
            web.get("/_sim/state", self.state),
        ]
        app.add_routes(routes)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.counters[request.path] += 1
        if self.on_request is not None:
            self.on_request(request)
        try:
            return await handler(request)
        except UpstoxError as exc:
            return exc.response()

    def add_account(self, user_id: str) -> UpstoxAccount:
        """Another Upstox user on this simulator, with its own app, token and order book
        (`UpstoxAccount`); a request carrying its token reads and writes its book only."""
        if user_id == self.user_id or any(a.user_id == user_id for a in self.accounts.values()):
            raise ValueError(f"an account {user_id!r} exists")
        rng = random.Random(f"upstox:{self._seed}:{user_id}")
        account = UpstoxAccount(
            user_id,
            client_id=f"sim-{rng.getrandbits(32):08x}",
            client_secret=f"{rng.getrandbits(64):016x}",
            access_token=f"sim-token-{rng.getrandbits(64):016x}",
        )
        self.accounts[account.client_id] = account
        return account

    def _users(self) -> list[_User]:
        return [self, *self.accounts.values()]

    def _authorized(self, request: web.Request) -> _User:
        """The user whose access token the request carries; else 401."""
        sent = request.headers.get("Authorization")
        for user in self._users():
            if sent == f"Bearer {user.access_token}":
                return user
        raise UpstoxError(401, "UDAPI100050", "Invalid token used to access API")

    async def _faulted(
        self,
        request: web.Request,
        endpoint: str,
        work: Callable[[], Awaitable[web.Response]],
    ) -> web.StreamResponse:
        """Run `work` under whatever fault the plan picks for `endpoint`."""
        rule = self.faults.pick(endpoint)
        if rule is None:
            return await work()
        kind = rule.kind
        if kind is FaultKind.LATENCY:
            await asyncio.sleep(rule.delay)
            return await work()
        if kind is FaultKind.ERROR:
            raise self._fault_error(rule)
        if kind is FaultKind.CLOSE:
            return self._drop(request)
        answer = await work()  # the order exists from here on
        if kind is FaultKind.ACCEPT_THEN_ERROR:
            raise self._fault_error(rule)
        if kind is FaultKind.ACCEPT_THEN_CLOSE:
            return self._drop(request)
        if kind is FaultKind.ACCEPT_THEN_DELAY:
            await asyncio.sleep(rule.delay)
            return answer
        await asyncio.Event().wait()  # NEVER_ANSWER: hold until the client gives up
        return answer

    @staticmethod
    def _fault_error(rule: Fault) -> UpstoxError:
        status, code, message = _UPSTOX_ERRORS.get(
            rule.error_type, _UPSTOX_ERRORS["GeneralException"]
        )
        return UpstoxError(rule.status or status, code, rule.message or message)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends the handler; nothing is written

    # -- login -----------------------------------------------------------------

    async def dialog(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        client_id = query.get("client_id")
        if (
            not any(user.client_id == client_id for user in self._users())
            or query.get("redirect_uri") != self.redirect_uri
        ):
            raise UpstoxError(
                400,
                "UDAPI100068",
                "Check your 'client_id' and 'redirect_uri'; one or both are incorrect.",
            )
        if query.get("response_type") != "code":
            raise _invalid("response_type", "response_type must be code")
        code = secrets.token_urlsafe(8)
        self._codes[code] = str(client_id)
        params = {"code": code} | ({"state": query["state"]} if "state" in query else {})
        raise web.HTTPFound(f"{self.redirect_uri}?{urlencode(params)}")

    async def token(self, request: web.Request) -> web.StreamResponse:
        async def work() -> web.Response:
            form = await request.post()
            code = str(form.get("code") or "")
            client_id = self._codes.pop(code, None)  # single use, success or not (FACTS 3)
            user = next((u for u in self._users() if u.client_id == client_id), None)
            if (
                user is None
                or form.get("client_id") != client_id
                or form.get("client_secret") != user.client_secret
                or form.get("redirect_uri") != self.redirect_uri
                or form.get("grant_type") != "authorization_code"
            ):
                raise UpstoxError(401, "UDAPI100016", "Invalid Credentials")
            data = {
                "email": "sim@example.invalid",
                "exchanges": ["NSE", "NFO", "BSE", "CDS", "BFO", "BCD", "MCX"],
                "products": ["D", "CO", "I", "MTF"],
                "broker": "UPSTOX",
                "user_id": user.user_id,
                "user_name": "Simulated Trader",
                "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
                "user_type": "individual",
                "poa": False,
                "is_active": True,
                "access_token": user.access_token,
                "extended_token": None,
            }
            return web.json_response(data)  # the token answer has no envelope

        return await self._faulted(request, "token", work)

    async def expire(self, request: web.Request) -> web.Response:
        """Expire the session (as 03:30 IST does), and start a fresh one on the next login."""
        await self.expire_session()
        return web.json_response({"status": "success"})

    async def expire_session(self, *, close_feeds: bool = True) -> str:
        """The access token stops working (401); open feeds are closed unless told not to
        (an open connection is not asked again). The new token (what a login would give)."""
        self.access_token = f"sim-token-{secrets.token_hex(8)}"
        if close_feeds:
            for link in list(self._links):
                await link.socket.close()
            for stream in list(self._streams):
                await stream.socket.close()
        return self.access_token

    # -- driving it from a test ------------------------------------------------

    async def push_price(self, key: str, ltp: float) -> None:
        """Trade `key` at `ltp` rupees now: the price goes to every subscriber."""
        if key not in self.prices:
            raise KeyError(f"unknown instrument key {key!r}")
        self.prices[key] = float(ltp)
        for link in list(self._links):
            await self._send(link, wire.TYPE_LIVE, [key])

    async def push_prices(self, prices: Mapping[str, float]) -> None:
        """Trade several keys at once (rupees): one live_feed frame carrying them all, as
        the feed batches what moved together."""
        for key, ltp in prices.items():
            if key not in self.prices:
                raise KeyError(f"unknown instrument key {key!r}")
            self.prices[key] = float(ltp)
        keys = list(prices)
        for link in list(self._links):
            await self._send(link, wire.TYPE_LIVE, keys)

    def accepted(self) -> list[float]:
        """When each order write the rate limiter counted arrived (time.monotonic())."""
        return list(self.stamps)

    def drop_feeds(self) -> None:
        """Cut every open feed connection mid-stream (no close frame), as a network drop."""
        for link in list(self._links):
            if link.request.transport is not None:
                link.request.transport.abort()

    def drop_portfolio(self) -> None:
        """Cut every portfolio-stream connection (no close frame): updates meanwhile are lost."""
        for stream in list(self._streams):
            if stream.request.transport is not None:
                stream.request.transport.abort()

    @property
    def portfolio_streams(self) -> int:
        """Open portfolio-stream connections."""
        return len(self._streams)

    def stall_feeds(self, seconds: float | None = None) -> None:
        """Current connections send nothing for `seconds` (None: until `resume_feeds`),
        as the Kite ticker's stall; the connection stays open. The moves meanwhile are
        held and sent when it ends, each key once at its latest price (a feed that
        caught up sends where the price is, not every step it took [INFER])."""
        loop = asyncio.get_running_loop()
        for link in self._links:
            link.stalled = True
            if link.timer is not None:
                link.timer.cancel()
            link.timer = None if seconds is None else loop.call_later(seconds, self._unstall, link)

    def resume_feeds(self) -> None:
        """End every stall now."""
        for link in list(self._links):
            self._unstall(link)

    def _unstall(self, link: _Link) -> None:
        if link.timer is not None:
            link.timer.cancel()
        link.stalled, link.timer = False, None
        held, link.held = sorted(link.held), set()
        if held and link in self._links:
            task = asyncio.get_running_loop().create_task(self._send_held(link, held))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send_held(self, link: _Link, keys: list[str]) -> None:
        with contextlib.suppress(ConnectionError):  # the connection ended meanwhile
            await self._send(link, wire.TYPE_LIVE, keys)

    def feed_connections(self) -> int:
        """How many feed connections are open now."""
        return len(self._links)

    def subscribed(self) -> set[str]:
        """The instrument keys some open feed connection has subscribed."""
        return {key for link in self._links for key in link.modes}

    def order_rows(self) -> list[dict[str, Any]]:
        """The order book, as GET /v2/order/retrieve-all answers it."""
        return [order.row() for order in self.orders.values()]

    # -- feed ------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        self._authorized(request)

        async def work() -> web.Response:
            code = secrets.token_urlsafe(12)
            self._feed_codes.add(code)
            uri = f"{self.feed_url}?requestId={secrets.token_hex(8)}&code={code}"
            data = {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}
            return web.json_response({"status": "success", "data": data})

        return await self._faulted(request, "authorize", work)

    async def feed(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code")
        if code is not None:
            if code not in self._feed_codes:
                raise UpstoxError(403, "UDAPI100050", "the authorized feed URL is used or unknown")
            self._feed_codes.discard(code)
        else:
            self._authorized(request)  # the SDK connects with its Bearer header
        rule = self.faults.pick("ws_connect")
        if rule is not None and rule.kind is FaultKind.WS_REJECT:
            raise UpstoxError(rule.http_status, "UDAPI100500", rule.text)
        socket = web.WebSocketResponse(heartbeat=10.0)
        await socket.prepare(request)
        link = _Link(socket, request)
        self._links.append(link)
        try:
            await socket.send_bytes(wire.market_info(_now_ms(), {"NSE_EQ": "NORMAL_OPEN"}))
            async for message in socket:
                if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    await self._on_request(link, message.data)
        finally:
            self._links.remove(link)
            if link.timer is not None:
                link.timer.cancel()
        return socket

    async def _on_request(self, link: _Link, data: bytes | str) -> None:
        try:
            asked = wire.parse_request(data)
        except wire.RequestError:
            return  # the real feed ignores what it cannot read [INFER]
        if asked.method == "unsub":
            for key in asked.keys:
                link.modes.pop(key, None)
            return
        assert asked.mode is not None
        for key in asked.keys:
            link.modes[key] = asked.mode
        known = [key for key in asked.keys if key in self.prices]
        await self._send(link, wire.TYPE_INITIAL, known)

    async def _send(self, link: _Link, frame_type: int, keys: list[str]) -> None:
        now = _now_ms()
        quotes = [
            (
                wire.Quote(key, self.prices[key], ltt=now, index=_is_index(key)),
                link.modes[key],
            )
            for key in keys
            if key in link.modes
        ]
        if not quotes:
            return
        if link.stalled:
            link.held.update(key for key in keys if key in link.modes)
            return
        rule = self.faults.pick("ws_frame")
        frame = wire.feed_response(frame_type, now, quotes)
        if rule is not None:
            if rule.kind is FaultKind.WS_DROP:
                if link.request.transport is not None:
                    link.request.transport.abort()
                return
            if rule.kind is FaultKind.WS_STALL:
                await asyncio.sleep(rule.delay)
            elif rule.kind is FaultKind.WS_MALFORMED:
                frame = frame[: max(1, len(frame) // 2)]  # cut mid-message
        if self.on_frame is not None:
            self.on_frame([quote.key for quote, _ in quotes])
        await link.socket.send_bytes(frame)

    def step(self) -> list[str]:
        """Move every tradable instrument by -1, 0 or +1 tick (seeded); the keys that moved."""
        moved = []
        for key, row in self.instruments.items():
            tick = Decimal(str(row.get("tick_size") or 0)) / 100
            if not tick or row.get("instrument_type") == "INDEX":
                continue
            change = self._walk_rng.choice((-1, 0, 1))
            price = Decimal(str(self.prices[key])) + change * tick
            if change and price > 0:
                self.prices[key] = float(price)
                moved.append(key)
        return moved

    async def _walk(self, every_s: float) -> None:
        """The random walk: one step every `every_s` seconds, sent as live_feed frames."""
        while True:
            await asyncio.sleep(every_s)
            moved = self.step()
            for link in list(self._links):
                await self._send(link, wire.TYPE_LIVE, moved)

    async def set_price(self, request: web.Request) -> web.Response:
        """Move one instrument's last price and send it to every subscriber (live_feed)."""
        body = await request.json()
        key, ltp = body.get("instrument_key"), body.get("ltp")
        if key not in self.prices:
            raise _invalid("instrument_key", f"unknown instrument key {key!r}")
        if isinstance(ltp, bool) or not isinstance(ltp, int | float) or ltp <= 0:
            raise _invalid("ltp", "ltp must be a positive number")
        await self.push_price(key, ltp)
        return web.json_response({"status": "success"})

    # -- portfolio stream --------------------------------------------------------

    async def portfolio_authorize(self, request: web.Request) -> web.Response:
        """The one-time URL of the portfolio stream (FACTS 5.1); its update types ride along."""
        user = self._authorized(request)
        return web.json_response(
            {"status": "success", "data": self._portfolio_uri(request, user.user_id)}
        )

    def _portfolio_uri(self, request: web.Request, user_id: str) -> dict[str, str]:
        asked = request.query.get("update_types") or "order"
        types = [kind for kind in asked.split(",") if kind]
        unknown = sorted(set(types) - UPDATE_TYPES)
        if unknown:
            raise _invalid("update_types", f"unknown update_types {', '.join(unknown)}")
        code = secrets.token_urlsafe(12)
        self._stream_codes[code] = user_id
        query = urlencode(
            {"requestId": secrets.token_hex(8), "code": code, "update_types": ",".join(types)}
        )
        uri = f"{self.portfolio_url}?{query}"
        return {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}

    async def portfolio_redirect(self, request: web.Request) -> web.StreamResponse:
        """The direct connect with the Bearer header (the SDK's feeder): 302 to the
        authorized socket, as Upstox answers (FACTS 5.1)."""
        user = self._authorized(request)
        raise web.HTTPFound(self._portfolio_uri(request, user.user_id)["authorized_redirect_uri"])

    async def portfolio(self, request: web.Request) -> web.StreamResponse:
        """The authorized socket: a JSON text message per status change of every order."""
        code = request.query.get("code")
        if code is None or code not in self._stream_codes:
            raise UpstoxError(403, "UDAPI100050", "the authorized stream URL is used or unknown")
        user_id = self._stream_codes.pop(code)
        types = frozenset((request.query.get("update_types") or "order").split(","))
        socket = web.WebSocketResponse(heartbeat=10.0)
        await socket.prepare(request)
        stream = _Stream(socket, request, types, user_id)
        self._streams.append(stream)
        writer = asyncio.get_running_loop().create_task(self._write_updates(stream))
        try:
            async for _ in socket:
                pass  # the stream takes no requests [DOC get-portfolio-stream-feed]
        finally:
            self._streams.remove(stream)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return socket

    async def _write_updates(self, stream: _Stream) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                text = await stream.outbox.get()
                await stream.socket.send_str(text)
                self.stream_updates += 1

    def _order_moved(self, order: Order) -> None:
        """An order's status changed: every stream of its user that asked for orders hears
        of it (a stream is one user's, as its token is)."""
        if not self._streams:
            return
        text = json.dumps(order.update())
        for stream in self._streams:
            if "order" in stream.types and stream.user_id == order.placed_by:
                stream.outbox.put_nowait(text)

    # -- orders ----------------------------------------------------------------

    def _take_order_slot(self, user: _User) -> None:
        """Upstox's order limits, counted per user."""
        stamps = user.stamps
        now = time.monotonic()
        longest = max(window for window, _ in self.order_windows)
        while stamps and now - stamps[0] >= longest:
            stamps.popleft()
        for window, limit in self.order_windows:
            if sum(1 for stamp in stamps if now - stamp < window) >= limit:
                self.refused += 1
                raise UpstoxError(429, "UDAPI10005", "Too Many Request Sent")
        stamps.append(now)

    async def place(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)
        self._take_order_slot(user)
        body = await _json_body(request)

        async def work() -> web.Response:
            order = self._new_order(body, user.user_id)
            user.orders[order.order_id] = order
            data = {"order_ids": [order.order_id]}
            return _answer(data)

        return await self._faulted(request, "place_order", work)

    def _new_order(self, body: dict[str, Any], placed_by: str) -> Order:
        key = body.get("instrument_token")
        row = self.instruments.get(key) if isinstance(key, str) else None
        if row is None:
            raise _invalid("instrument_token", f"unknown instrument_token {key!r}")
        if row.get("instrument_type") == "INDEX":
            raise _invalid("instrument_token", "an index cannot be ordered")
        quantity = body.get("quantity")
        lot = int(row.get("lot_size") or 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise _invalid("quantity", "quantity must be a positive integer")
        if quantity % lot:
            raise _invalid("quantity", f"quantity must be a multiple of the lot size {lot}")
        choices = {
            "order_type": ("MARKET", "LIMIT", "SL", "SL-M"),
            "transaction_type": ("BUY", "SELL"),
            "product": ("I", "D", "MTF"),
            "validity": ("DAY", "IOC"),
        }
        for name, allowed in choices.items():
            if body.get(name) not in allowed:
                raise _invalid(name, f"{name} must be one of {', '.join(allowed)}")
        tag = body.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise _invalid("tag", "tag must be a string")
        kind = body["order_type"]
        price = self._on_tick(body, "price", row, needed=kind in ("LIMIT", "SL"))
        trigger = self._on_tick(body, "trigger_price", row, needed=kind in ("SL", "SL-M"))
        order = Order(
            order_id=str(next(self._ids)),
            key=row["instrument_key"],
            symbol=row["trading_symbol"],
            exchange=row["exchange"],
            side=body["transaction_type"],
            order_type=kind,
            product=body["product"],
            validity=body["validity"],
            quantity=quantity,
            price=price,
            trigger_price=trigger,
            tag=tag,
            status="put order req received",
            on_move=self._order_moved,
            placed_by=placed_by,
        )
        order.history.append(order.row())
        self._order_moved(order)
        self._match(order)
        return order

    @staticmethod
    def _on_tick(body: dict[str, Any], name: str, row: dict[str, Any], *, needed: bool) -> float:
        value = body.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(name, f"{name} must be a number")
        if not needed:
            return 0.0
        if value <= 0:
            raise _invalid(name, f"{name} is required for this order type")
        try:
            paise = Decimal(str(value)) * 100
            tick = Decimal(str(row.get("tick_size") or 1))
        except InvalidOperation:
            raise _invalid(name, f"{name} is not a price") from None
        if paise % tick:
            raise _invalid(name, f"{name} must be a multiple of the tick size")
        return float(value)

    def _match(self, order: Order) -> None:
        """Fill what is marketable at the last price; leave the rest open."""
        ltp = self.prices[order.key]
        order.move("validation pending")
        order.move("open pending")
        if order.order_type in ("SL", "SL-M"):
            order.move("trigger pending")
            return
        marketable = order.order_type == "MARKET" or (
            order.price >= ltp if order.side == "BUY" else order.price <= ltp
        )
        if not marketable:
            order.move("open")
            return
        order.filled_quantity = order.quantity
        order.average_price = ltp
        order.move("complete")

    @staticmethod
    def _order(user: _User, order_id: object) -> Order:
        order = user.orders.get(order_id) if isinstance(order_id, str) else None
        if order is None:
            raise _invalid("order_id", f"unknown order_id {order_id!r}")
        return order

    async def modify(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)
        self._take_order_slot(user)
        body = await _json_body(request)

        async def work() -> web.Response:
            order = self._order(user, body.get("order_id"))
            if order.status in TERMINAL:
                raise _invalid("order_id", f"the order is {order.status} and cannot be modified")
            row = self.instruments[order.key]
            if "price" in body and order.order_type in ("LIMIT", "SL"):
                order.price = self._on_tick(body, "price", row, needed=True)
            quantity = body.get("quantity")
            if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0:
                order.quantity = quantity
            order.move("modified")
            order.status = "open"
            data = {"order_id": order.order_id}
            return _answer(data)

        return await self._faulted(request, "modify_order", work)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)
        self._take_order_slot(user)

        async def work() -> web.Response:
            order = self._order(user, request.query.get("order_id"))
            if order.status in TERMINAL:
                raise _invalid("order_id", f"the order is {order.status} and cannot be cancelled")
            order.move("cancelled")
            data = {"order_id": order.order_id}
            return _answer(data)

        return await self._faulted(request, "cancel_order", work)

    async def book(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)

        async def work() -> web.Response:
            rows = [order.row() for order in user.orders.values()]
            return web.json_response({"status": "success", "data": rows})

        return await self._faulted(request, "orders", work)

    async def details(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)

        async def work() -> web.Response:
            order = self._order(user, request.query.get("order_id"))
            return web.json_response({"status": "success", "data": order.row()})

        return await self._faulted(request, "order_details", work)

    async def history(self, request: web.Request) -> web.StreamResponse:
        user = self._authorized(request)

        async def work() -> web.Response:
            order_id, tag = request.query.get("order_id"), request.query.get("tag")
            if order_id is None and tag is None:
                raise _invalid("order_id", "order_id or tag is required")
            rows = [
                step
                for order in user.orders.values()
                if (order_id is None or order.order_id == order_id)
                and (tag is None or order.tag == tag)
                for step in order.history
            ]
            if order_id is not None and not rows:
                raise _invalid("order_id", f"unknown order_id {order_id!r}")
            return web.json_response({"status": "success", "data": rows})

        return await self._faulted(request, "order_history", work)

    async def master(self, request: web.Request) -> web.Response:
        return web.Response(body=self._master, content_type="application/gzip")

    # -- control ---------------------------------------------------------------

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            rule = self.faults.add(Fault.from_json(await request.json()))
        except (FaultError, ValueError) as exc:
            raise _invalid("fault", str(exc)) from None
        return web.json_response({"status": "success", "data": rule.to_json()})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"status": "success"})

    async def state(self, request: web.Request) -> web.Response:
        data = {
            "orders": [order.row() for order in self.orders.values()],
            "prices": self.prices,
            "faults": dict(self.faults.fired),
            "refused": self.refused,
            "links": len(self._links),
            "portfolio_streams": len(self._streams),
        }
        return web.json_response({"status": "success", "data": data})


_User = UpstoxSim | UpstoxAccount  # a request's user: the simulator's own, or an added one


def _answer(data: dict[str, Any]) -> web.Response:
    """An order write's success, with the v3 latency metadata (FACTS 2.2)."""
    return web.json_response({"status": "success", "data": data, "metadata": {"latency": 1}})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise UpstoxError(400, "UDAPI100036", "Invalid Input: the body is not JSON") from None
    if not isinstance(body, dict):
        raise UpstoxError(400, "UDAPI100036", "Invalid Input: the body is not a JSON object")
    return body


def _is_index(key: str) -> bool:
    return key.split("|", 1)[0].endswith("_INDEX")


def _now_ms() -> int:
    return int(time.time() * 1000)
