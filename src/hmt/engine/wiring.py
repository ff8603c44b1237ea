"""Builds a running hmt from its settings: the one module where the adapters meet.

Start-up follows the seed's order: kill switch, database (migrated), recovery
of in-flight orders, the book, the broker session, the ticker and its
subscriptions, then the health monitor, expiry sweep and change feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import random
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from hmt.config import Broker, ConfigError, Settings
from hmt.core.throttle import KITE_ORDER_LIMITS, Throttle
from hmt.engine.executor import Executor, RetryPolicy
from hmt.engine.health import Health, Observations, judge
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.service import Engine, EngineConfig, EngineState
from hmt.kite.instruments import KiteInstruments
from hmt.kite.orders import KiteOrders
from hmt.kite.rest import KiteRest
from hmt.kite.session import exchange_request_token
from hmt.kite.ticker import Ticker
from hmt.kite.ticker_state import LinkEvent, LinkEventKind
from hmt.kite.ticks import Mode
from hmt.logs import register_secret
from hmt.store import migrate
from hmt.store.accounts import AccountStore
from hmt.store.changes import Change, ChangeFeed, Resync
from hmt.store.db import Database, DbState, create_engine
from hmt.store.execution import ExecutionStore
from hmt.store.sealing import Sealer
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore

log = structlog.get_logger("hmt.wiring")

# Kite counts orders when they arrive; a little slack on our side keeps network
# jitter from landing eleven in one of its seconds.
THROTTLE_MARGIN_S = 0.05
EXPIRY_SWEEP_S = 5.0
LISTEN_WAIT_S = 5.0
# hmt trades through one Kite account; its sealed session is stored under this user.
ENGINE_ACCOUNT = "hmt-engine"
# Used in place of an access token until the first Kite login: Kite refuses it (403),
# so the engine waits in `login_required` and fires nothing.
AWAITING_LOGIN = "awaiting-kite-login"


class TickerFeed:
    """The ticker as the engine's `Feed`: every instrument in the configured mode."""

    def __init__(self, ticker: Ticker, mode: Mode) -> None:
        self.ticker = ticker
        self._mode = mode

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.ticker.subscribe(tokens, self._mode)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.ticker.unsubscribe(tokens)

    def set_access_token(self, access_token: str) -> None:
        self.ticker.set_access_token(access_token)

    async def start(self) -> None:
        await self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()

    @property
    def connected(self) -> bool:
        return self.ticker.stats().connected


@dataclass
class Runtime:
    """Everything `hmt run` keeps alive, and how to read its state."""

    settings: Settings
    db: Database
    triggers: TriggerStore
    tokens: TokenStore
    engine: Engine
    feed: TickerFeed
    rest: KiteRest
    instruments: InstrumentMaster
    accounts: AccountStore | None = None  # None without HMT_SECRET_KEY: nothing is stored
    awaiting_login: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _listening: asyncio.Event = field(default_factory=asyncio.Event)
    _loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Start the engine and the background loops (the kill switch is honoured).

        On PostgreSQL the change feed listens before the book is loaded, so an
        edit committed during the load is not missed; it is applied after.
        """
        if self.db.dialect == "postgresql":
            self._spawn(self._change_loop())
            with contextlib.suppress(TimeoutError):
                # Unreachable now: the feed resynchronises when it connects later.
                await asyncio.wait_for(self._listening.wait(), LISTEN_WAIT_S)
        await self.engine.start()
        self._loaded.set()
        gc.collect()  # once, at start-up: nothing to pause yet
        _keep_out_of_collections()
        if self.awaiting_login and self.engine.state is EngineState.RUNNING:
            self.engine.state = EngineState.LOGIN_REQUIRED
        self._spawn(self._expiry_loop())
        self._spawn(self._health_loop())

    async def close(self) -> None:
        """Stop: drain in-flight orders, close the feed, the broker client and the database."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.engine.stop()
        await self.rest.aclose()
        await self.db.dispose()

    def set_access_token(self, access_token: str) -> None:
        """A new broker session for orders and ticks, without a restart."""
        register_secret(access_token)
        self.rest.set_access_token(access_token)
        self.engine.set_access_token(access_token)

    async def kite_login(self, request_token: str) -> bool:
        """Exchange a Kite request token, store the session sealed, and use it; stored?"""
        register_secret(request_token)
        secret = self.settings.kite_api_secret
        if secret is None or not self.settings.kite_api_key:
            raise ConfigError("Kite login needs HMT_KITE_API_KEY and HMT_KITE_API_SECRET")
        access_token = await exchange_request_token(
            api_url=self.settings.kite_api_url,
            api_key=self.settings.kite_api_key,
            request_token=request_token,
            api_secret=secret.get_secret_value(),
        )
        return await self.use_access_token(access_token)

    async def use_access_token(self, access_token: str) -> bool:
        """Store `access_token` sealed (when a key is configured), then trade with it."""
        register_secret(access_token)
        stored = False
        if self.accounts is not None:
            await self.accounts.save(
                ENGINE_ACCOUNT,
                api_key=self.settings.kite_api_key or "",
                access_token=SecretStr(access_token),
            )
            stored = True
        self.awaiting_login = False
        self.set_access_token(access_token)
        log.info("broker_session_set", stored=stored)
        return stored

    def health(self) -> Health:
        engine = self.engine
        ticker = self.feed.ticker.stats()
        age = None if ticker.last_frame_age_s is None else ticker.last_frame_age_s
        return judge(
            Observations(
                enabled=self.settings.engine_enabled,
                running=engine.state in (EngineState.RUNNING, EngineState.LOGIN_REQUIRED),
                ticker_connected=ticker.connected,
                last_tick_age=age,
                database_reachable=self.db.health.state is DbState.OK,
                broker_session_valid=engine.state is not EngineState.LOGIN_REQUIRED
                and ticker.state != "token_invalid",
                active_triggers=len(engine.book),
            )
        )

    def stats(self) -> dict[str, Any]:
        engine, stats = self.engine, self.engine.stats
        ticker = self.feed.ticker.stats()
        return {
            "state": engine.state.value,
            "active_triggers": len(engine.book),
            "subscribed_instruments": len(engine.book.instruments()),
            "ticks_processed": stats.ticks_processed,
            "triggered_orders": stats.triggered_orders,
            "failed_orders": stats.failed_orders,
            "lost_claims": stats.lost_claims,
            "unresolved_orders": stats.unresolved,
            "uptime_s": round(engine.uptime, 3),
            "ws": {
                "state": str(ticker.state),
                "connected": ticker.connected,
                "connections": ticker.connections,
                "subscribed_tokens": ticker.subscribed_tokens,
                "reconnects": ticker.reconnects,
                "bad_frames": dict(ticker.bad_frames),
                "last_frame_age_s": ticker.last_frame_age_s,
            },
            "database": self.db.health.state.value,
            **stats.latency(),
        }

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            with _logged("expiry_sweep_failed"):
                for trigger_id in await self.triggers.expire_due():
                    await self.engine.refresh(trigger_id)

    async def _health_loop(self) -> None:
        interval = self.settings.health_check_interval_ms / 1000
        last: Health | None = None
        while True:
            with _logged("health_check_failed"):
                await self.db.ping()
                health = self.health()
                if health != last:  # a change is news; the same verdict again is not
                    log.info("health", verdict=health.verdict.value, reasons=list(health.reasons))
                    last = health
            await asyncio.sleep(interval)

    async def _change_loop(self) -> None:
        """Edits by anything (psql, another service, a hosted UI) reach the book."""
        feed = ChangeFeed(
            self.settings.database_url,
            application_name="hmt-listener",
            reconnect_delay=self.settings.reconnect_delay_ms / 1000,
        )
        async for item in feed:
            if isinstance(item, Resync) and not self._listening.is_set():
                # Listening began before the start-up load: that load is this resync.
                self._listening.set()
                continue
            await self._loaded.wait()  # changes made during the load wait for it
            with _logged("change_feed_apply_failed"):
                if isinstance(item, Resync):
                    await self.engine.resync()
                    _keep_out_of_collections()
                elif isinstance(item, Change):
                    await self.engine.refresh(item.id)  # type: ignore[arg-type]


def _keep_out_of_collections() -> None:
    """Exempt what is alive now (above all the book) from the cyclic collector.

    The book holds a million small objects for the life of the process; without
    this every full collection walks them all, on the tick path (measured: 1M
    triggers, tick-to-order p50 159 ms -> 11 ms). Reference counting still frees
    a trigger the moment it leaves the book; only cycles among these objects
    would outlive their use, and the book makes none.
    """
    gc.freeze()


@contextlib.contextmanager
def _logged(event: str) -> Any:
    """Keep a background loop alive through one failed round, saying what failed."""
    try:
        yield
    except Exception:
        log.exception(event)


async def build(settings: Settings) -> Runtime:
    """Connect and migrate the database and assemble the engine; nothing starts firing yet."""
    _check_broker(settings)
    api_key = settings.kite_api_key or ""
    if settings.kite_api_secret is not None:
        register_secret(settings.kite_api_secret.get_secret_value())
        settings.require_secret_key()  # a Kite login stores the session: it must be sealed
    sealer = None
    if settings.secret_key is not None:
        register_secret(settings.secret_key.get_secret_value())
        sealer = Sealer([settings.secret_key.get_secret_value()])
    database = create_engine(settings.database_url, application_name="hmt-engine")
    await migrate.upgrade_at_start(database, enabled=settings.db_auto_upgrade)
    db = Database(database, retries=settings.max_retries, backoff_ms=settings.retry_backoff_ms)
    accounts = None if sealer is None else AccountStore(db, sealer)
    try:
        access_token = await _access_token(settings, accounts)
    except Exception:
        await database.dispose()
        raise
    awaiting_login = access_token is None
    access_token = access_token or AWAITING_LOGIN
    register_secret(access_token)
    triggers = TriggerStore(db)
    rest = KiteRest(
        api_url=settings.kite_api_url,
        api_key=api_key,
        access_token=access_token,
        timeout=settings.kite_timeout_ms / 1000,
    )
    executor = Executor(
        KiteOrders(rest),
        ExecutionStore(triggers),
        throttle=Throttle(KITE_ORDER_LIMITS, margin=THROTTLE_MARGIN_S),
        policy=RetryPolicy(
            max_retries=settings.max_retries, backoff=settings.retry_backoff_ms / 1000
        ),
        rng=random.Random(),
    )
    engine: Engine
    ticker = Ticker(
        settings.kite_ws_url,
        api_key,
        access_token,
        on_ltp=lambda token, ltp: engine.on_ltp(token, ltp),
        on_event=lambda event: _on_link_event(engine, event),
        reconnect_delay_ms=settings.reconnect_delay_ms,
    )
    feed = TickerFeed(ticker, Mode(settings.tick_mode.value))
    engine = Engine(
        source=ExecutionStore(triggers),
        feed=feed,
        executor=executor,
        clock=lambda: datetime.now(UTC),
        config=EngineConfig(enabled=settings.engine_enabled, resend_within=timedelta(seconds=60)),
    )
    return Runtime(
        settings=settings,
        db=db,
        triggers=triggers,
        tokens=TokenStore(db),
        engine=engine,
        feed=feed,
        rest=rest,
        instruments=InstrumentMaster(KiteInstruments(rest), clock=lambda: datetime.now(UTC)),
        accounts=accounts,
        awaiting_login=awaiting_login,
    )


def _on_link_event(engine: Engine, event: LinkEvent) -> None:
    # The ticker's 403 is the same expired session an order would meet: say so now.
    if event.kind is LinkEventKind.TOKEN_INVALID:
        engine.login_required(event.reason)


async def _access_token(settings: Settings, accounts: AccountStore | None) -> str | None:
    """HMT_KITE_ACCESS_TOKEN, else the stored session, else None when a login can get one."""
    if settings.kite_access_token is not None:
        return settings.kite_access_token.get_secret_value()
    if accounts is not None:
        try:
            stored = await accounts.load(ENGINE_ACCOUNT)
        except InvalidTag:
            log.warning(
                "stored_session_unreadable",
                reason="sealed with another HMT_SECRET_KEY: log in again at /kite/login",
            )
            stored = None
        usable = stored is not None and stored.api_key == settings.kite_api_key
        if usable and stored is not None and stored.access_token is not None:
            log.info("broker_session_loaded", updated_at=stored.updated_at.isoformat())
            return stored.access_token.get_secret_value()
    if settings.kite_api_secret is not None:
        log.warning("login_required", reason="no Kite access token yet: open /kite/login")
        return None
    raise ConfigError(
        "HMT_KITE_ACCESS_TOKEN is not set and no Kite session is stored: set it, or set "
        "HMT_KITE_API_SECRET and HMT_SECRET_KEY and log in at /kite/login (for the "
        "simulator, `hmt sim` prints the settings)"
    )


def _check_broker(settings: Settings) -> None:
    if settings.broker is Broker.PAPER and not _is_loopback(settings.kite_api_url):
        # Paper mode must never reach a real broker: its orders are pretend.
        raise ConfigError(
            f"HMT_BROKER=paper needs the simulator, but HMT_KITE_API_URL is "
            f"{settings.kite_api_url}: start `hmt sim` and point HMT_KITE_API_URL and "
            "HMT_KITE_WS_URL at it, or set HMT_BROKER=kite for a real account"
        )
    if not settings.kite_api_key:
        raise ConfigError(
            "HMT_KITE_API_KEY must be set (for the simulator, `hmt sim` prints the settings)"
        )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
