"""The simulator as one object: market, broker, REST and ticker on loopback.

    async with Simulator(seed=1) as sim:
        kite = KiteConnect(sim.api_key, root=sim.api_url)
        sim.push_price(408065, "1600.05")

REST (and the /_sim/ control API) listen on `port`, the ticker on `ws_port`;
both default to ephemeral ports. `api_url` and `ws_url` are plain base URLs
for HMT_KITE_API_URL and HMT_KITE_WS_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from hmt.sim.broker import Broker, Fills
from hmt.sim.control import Control
from hmt.sim.derivatives import standard_universe
from hmt.sim.faults import FaultPlan
from hmt.sim.gaps import Gaps
from hmt.sim.httpd import HttpServer, Request, Response
from hmt.sim.limits import OrderLimits
from hmt.sim.prices import IST, Market, Quote, RandomWalk, Replay, ReplayRow, load_replay
from hmt.sim.rest import RestApi
from hmt.sim.session import Sessions, checksum
from hmt.sim.ticker import Ticker
from hmt.sim.universe import Universe

APP_ID = 4242  # the postback's app_id: any number; Kite's are small integers


@dataclass(frozen=True, slots=True)
class SimAccount:
    """A further account of the simulator (`Simulator.add_account`)."""

    sessions: Sessions
    broker: Broker

    @property
    def api_key(self) -> str:
        return self.sessions.api_key

    @property
    def access_token(self) -> str:
        return self.sessions.access_token

    def orders(self) -> list[dict[str, Any]]:
        return self.broker.book()

    def expire_session(self) -> None:
        """This account's access tokens stop working (403 TokenException); not the others'."""
        self.sessions.expire_all()

    def renew_session(self) -> str:
        self.sessions.access_token = self.sessions.new_access_token()
        return self.sessions.access_token


class Simulator:
    """A Kite stand-in: start it, point clients at its URLs, drive it from tests."""

    def __init__(
        self,
        *,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        walk: bool = False,
        walk_speed: float = 1.0,
        replay: Path | list[ReplayRow] | None = None,
        replay_speed: float = 1.0,
        funds: Decimal | int | str | None = None,
        limits: OrderLimits | None = None,
        heartbeat_interval: float = 2.0,
        universe: Universe | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        fills: Fills | None = None,
    ) -> None:
        self.seed, self.host = seed, host
        self._ports = (port, ws_port)
        # The default lists index futures and options whose expiries follow the
        # simulator's own date (IST), so they are always current.
        self.universe = universe or standard_universe(datetime.fromtimestamp(clock(), IST).date())
        self.counters: Counter[str] = Counter()
        self.faults = FaultPlan(seed)
        self.sessions = Sessions(seed)
        self.market = Market(self.universe, clock)
        units = None if funds is None else int(Decimal(str(funds)) * 100)
        self.broker = Broker(
            self.universe,
            self.market,
            seed=seed,
            user_id=self.sessions.user_id,
            funds=units,
            limits=limits,
            clock=clock,
            monotonic=monotonic,
        )
        if fills is not None:  # how orders fill (docs/simulator.md); reset restores the default
            self.broker.fills = fills
        self.rest = RestApi(
            self.broker, self.market, self.sessions, self.faults, self.counters, clock, seed
        )
        self.ticker = Ticker(
            self.market, self.faults, self.counters, self._valid, heartbeat_interval
        )
        self._limits, self._clocks = limits, (clock, monotonic)
        self.accounts: dict[str, SimAccount] = {}  # further accounts by API key
        self.control = Control(self)
        self.broker.listeners.append(self._postback)
        self.walk = RandomWalk(self.market, seed, speed=walk_speed) if walk else None
        rows = load_replay(replay, self.universe) if isinstance(replay, Path) else replay
        self.replay = Replay(self.market, rows, speed=replay_speed) if rows is not None else None
        self.gaps = Gaps(self.market, self.ticker, self.walk)
        self._http = HttpServer(self._route)
        # Called with each REST request as it arrives, before faults and routing
        # (benchmarks time order requests with it).
        self.on_request: Callable[[Request], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.api_url = self.ws_url = ""

    # ---- lifecycle ------------------------------------------------------

    async def start(self) -> Simulator:
        port, ws_port = self._ports
        api_port = await self._http.start(self.host, port)
        ws_bound = await self.ticker.start(self.host, ws_port)
        self.api_url = f"http://{self.host}:{api_port}"
        self.ws_url = f"ws://{self.host}:{ws_bound}"
        if self.walk is not None:
            self._tasks.append(asyncio.create_task(self.walk.run()))
        if self.replay is not None:
            self._tasks.append(asyncio.create_task(self.replay.run()))
        return self

    async def stop(self) -> None:
        await self.gaps.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.ticker.close()
        await self._http.close()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- credentials ----------------------------------------------------

    @property
    def api_key(self) -> str:
        return self.sessions.api_key

    @property
    def api_secret(self) -> str:
        return self.sessions.api_secret

    @property
    def access_token(self) -> str:
        return self.sessions.access_token

    def add_account(self, user_id: str) -> SimAccount:
        """Another Kite account on this simulator: its own API key, secret and access
        token, sessions and order book (and its own order rate limits), as Kite keeps
        each user's. Its orders match against the same market; its order updates are
        not sent on the ticker (the order book and order history tell them)."""
        if user_id == self.sessions.user_id or any(
            a.sessions.user_id == user_id for a in self.accounts.values()
        ):
            raise ValueError(f"an account {user_id!r} exists")
        sessions = Sessions(self.seed, user_id, salt=f":{user_id}")
        clock, monotonic = self._clocks
        broker = Broker(
            self.universe,
            self.market,
            seed=self.seed + 1 + len(self.accounts),  # other order ids than the first's
            user_id=user_id,
            limits=self._limits,
            clock=clock,
            monotonic=monotonic,
        )
        account = SimAccount(sessions, broker)
        self.accounts[sessions.api_key] = account
        self.rest.accounts[sessions.api_key] = (sessions, broker)
        return account

    def _valid(self, api_key: str, access_token: str) -> bool:
        other = self.accounts.get(api_key)
        if other is not None:
            return other.sessions.valid(api_key, access_token)
        return self.sessions.valid(api_key, access_token)

    def request_token(self) -> str:
        """A request token, as Kite's login redirect would deliver it."""
        return self.sessions.new_request_token()

    def expire_session(self) -> None:
        """Every access token stops working (403 TokenException); ticker links are cut."""
        self.sessions.expire_all()
        self.ticker.drop_all()

    def renew_session(self) -> str:
        """A fresh valid access token after an expiry (the default one stays dead)."""
        self.sessions.access_token = self.sessions.new_access_token()
        return self.sessions.access_token

    # ---- driving it -----------------------------------------------------

    def push_price(self, token: int, price: str | int | float | Decimal) -> Quote:
        """Trade `token` at `price` rupees now: ticks go out, orders match."""
        return self.market.push_price(token, price)

    def orders(self) -> list[dict[str, Any]]:
        """The order book, as GET /orders returns it."""
        return self.broker.book()

    def order_history(self, order_id: str) -> list[dict[str, Any]]:
        return self.broker.history(order_id)

    def reset(self) -> None:
        """Prices back to previous close, empty book, no faults, counters zeroed."""
        self.gaps.cancel()
        self.market.reset()
        self.broker.reset()
        for account in self.accounts.values():
            account.broker.reset()
        self.faults.clear()
        self.counters.clear()

    # ---- wiring ---------------------------------------------------------

    async def _route(self, request: Request) -> Response:
        if self.on_request is not None:
            self.on_request(request)
        if request.path.startswith("/_sim/"):
            return await self.control.handle(request)
        return await self.rest.handle(request)

    def _postback(self, row: dict[str, Any]) -> None:
        """Order updates go out on the ticker with the postback fields (FACTS 2.8)."""
        payload = {
            "user_id": self.sessions.user_id,
            "unfilled_quantity": row["quantity"] - row["filled_quantity"],
            "app_id": APP_ID,
            "checksum": checksum(row["order_id"], row["order_timestamp"], self.api_secret),
            **row,
        }
        self.counters["postbacks"] += 1
        self.ticker.send_order_update(payload)
