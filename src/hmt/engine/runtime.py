"""A running hmt, assembled: the parts `hmt.compose.build` made, and how to read their state.

Nothing here builds or chooses an adapter (that is the composition's job) and
nothing here runs a loop (that is the supervisor's). It starts and closes the
parts in order and answers /health and /stats from the engine, the broker
session, the feed and the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from hmt.backtest.recording import TickRecorder
from hmt.config import ConfigError, Settings
from hmt.core.candles import Candle
from hmt.core.instruments import Instrument
from hmt.core.throttle import Limit
from hmt.engine.accounts import DEFAULT_ACCOUNT, AccountExecutors
from hmt.engine.channels import Channels
from hmt.engine.cluster import ClusterNode
from hmt.engine.fills import Fills
from hmt.engine.health import Health, Observations, judge
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.notices import Notifier
from hmt.engine.ports import BrokerRest, CandleSource, Feed, FeedStatus
from hmt.engine.sampler import WINDOW_NAMES
from hmt.engine.service import Engine, EngineState
from hmt.engine.session import BrokerSession, SessionState
from hmt.engine.supervisor import Supervisor
from hmt.store.accounts import AccountStore
from hmt.store.db import Database, DbState
from hmt.store.linked import AccountInUse, LinkedAccount, LinkedAccounts
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore


@dataclass
class Runtime:
    """Everything `hmt run` keeps alive; the API sees it through `hmt.engine.facade.Facade`."""

    settings: Settings
    db: Database
    triggers: TriggerStore
    tokens: TokenStore
    engine: Engine
    session: BrokerSession
    supervisor: Supervisor
    feed: Feed
    rest: BrokerRest
    instruments: InstrumentMaster  # the broker's daily master: the checks and the search
    accounts: AccountStore | None = None  # None without HMT_SECRET_KEY: nothing is stored
    recorder: TickRecorder | None = None  # HMT_RECORD_TICKS: the live tick recorder
    history: CandleSource | None = None  # the broker's historical candles, where it has them
    # Notifications (docs/notifications.md); None without HMT_SECRET_KEY (URLs are sealed).
    notifier: Notifier | None = None
    channels: Channels | None = None
    fills: Fills | None = None  # brackets' fills (docs/engine.md, "Brackets")
    cluster: ClusterNode | None = None  # HMT_CLUSTER_URL: this node's leases (docs/cluster.md)
    # Several accounts (docs/accounts.md): the linked accounts' store, the engine's
    # executors by account, and the composition's way to start using a new one.
    linked: LinkedAccounts | None = None
    executors: AccountExecutors | None = None
    add_account: Callable[[LinkedAccount], Awaitable[None]] | None = None
    remove_account: Callable[[str], Awaitable[None]] | None = None  # its unlinking
    # The login of a linked Upstox account not traded here (a cluster node's): the token
    # only stored.
    store_login: Callable[[str, str], Awaitable[bool]] | None = None
    closing: list[BrokerRest] = field(default_factory=list)  # the linked accounts' clients
    # The brokers whose accounts this engine trades (its own; a Kite engine's linked
    # Upstox accounts too), and the broker an instrument id belongs to (docs/accounts.md).
    brokers: frozenset[str] = frozenset()
    broker_of: Callable[[int], str] = field(default=lambda token: "kite")
    second_feed: Callable[[], FeedStatus | None] | None = None  # the other broker's feed

    async def start(self) -> None:
        """Start the engine and its background loops (the kill switch is honoured)."""
        if self.recorder is not None:
            self.recorder.start()
        if self.notifier is not None:
            self.notifier.start()
        await self.supervisor.start()
        if self.cluster is not None:  # the engine runs (empty): now take partitions
            await self.cluster.start()

    async def close(self) -> None:
        """Stop: the leases (given back at once), the loops, then drain in-flight orders
        and close feed, broker and database."""
        if self.cluster is not None:
            await self.cluster.stop()
        await self.supervisor.stop()
        await self.engine.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        await self.rest.aclose()
        for rest in self.closing:
            await rest.aclose()
        await self.db.dispose()

    async def candles(
        self, instrument: Instrument, interval: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """The broker's candles of `instrument`; `ConfigError` when it serves none."""
        if self.history is None:
            raise ConfigError("this broker serves no historical candles")
        return await self.history.candles(instrument, interval, start, end)

    @property
    def awaiting_login(self) -> bool:
        """No broker session yet and none possible until a login (the ticker cannot connect)."""
        return self.session.state is SessionState.AWAITING_LOGIN

    def set_access_token(self, access_token: str) -> None:
        """A new broker session for orders and ticks, without a restart (nothing stored)."""
        self.session.renew(access_token)

    async def use_access_token(self, access_token: str) -> bool:
        """Store `access_token` sealed (when a key is configured), then trade with it; stored?"""
        return await self.session.use_access_token(access_token)

    async def kite_login(self, request_token: str) -> bool:
        """Exchange a Kite request token, store the session sealed, and use it; stored?"""
        return await self.session.login(request_token)

    def account_sessions(self) -> dict[str, tuple[str, str]]:
        """Each account's session state and reason by id; the default account's is the
        engine's session. An account stored but not in this engine is absent."""
        states = {DEFAULT_ACCOUNT: (self.session.state.value, self.session.reason)}
        if self.executors is not None:
            for account_id, linked in self.executors.linked.items():
                states[account_id] = (linked.session.state.value, linked.session.reason)
        return states

    async def link_account(self, account: LinkedAccount) -> None:
        """Store a new account sealed, then trade through it (`AccountExists`, or
        `ConfigError` without HMT_SECRET_KEY, and nothing is stored)."""
        if self.linked is None or self.linked.sealer is None:
            raise ConfigError("linking an account needs HMT_SECRET_KEY: its secrets are sealed")
        await self.linked.link(account)
        if self.add_account is not None:
            await self.add_account(account)

    async def unlink_account(self, account_id: str) -> bool:
        """Unlink a linked account: refused (`AccountInUse`) while a trigger of it is
        active, paused or triggered, and nothing changes; else it leaves the engine first
        (no order can go through it), then its row and sealed secrets are deleted.
        `UnlinkRefused` if the engine cannot let it go (nothing changed); False if no
        such row."""
        if self.linked is None:
            return False
        triggers = await self.linked.in_use(account_id)
        if triggers:
            raise AccountInUse(account_id, triggers)
        if self.remove_account is not None:
            await self.remove_account(account_id)
        try:
            return await self.linked.unlink(account_id)
        except AccountInUse:
            # A trigger of it was made between the two counts: trade through it again.
            account = await self.linked.open(account_id) if self.linked.sealer else None
            if account is not None and self.add_account is not None:
                await self.add_account(account)
            raise

    async def use_account_token(self, account_id: str, access_token: str) -> bool:
        """A linked account's new access token: kept sealed, then its book is read and its
        triggers armed again; False if this engine does not trade that account."""
        session = None if self.executors is None else self.executors.session_of(account_id)
        if session is None:
            return False
        await session.use_access_token(access_token)
        return True

    async def account_login(self, account_id: str, request_token: str) -> bool:
        """A linked account's login: its request token exchanged with that account's API
        key and secret, then the session used as `use_account_token` does (kept sealed,
        its book read, its triggers armed again). A linked account this engine does not
        trade (an Upstox one) has its token only stored sealed; False if neither applies.
        `ConfigError` if it has no API secret; `BrokerError` if the broker refuses."""
        session = None if self.executors is None else self.executors.session_of(account_id)
        if session is None:
            return self.store_login is not None and await self.store_login(
                account_id, request_token
            )
        await session.login(request_token)  # the exchange, then `use_access_token`
        return True

    def health(self) -> Health:
        engine, feed = self.engine, self.feed.status()
        lapsed = tuple(
            account_id
            for account_id, (state, _) in self.account_sessions().items()
            if account_id != DEFAULT_ACCOUNT and state != SessionState.VALID.value
        )
        return judge(
            Observations(
                enabled=self.settings.engine_enabled,
                running=engine.state in (EngineState.RUNNING, EngineState.LOGIN_REQUIRED),
                ticker_connected=feed.connected,
                last_tick_age=feed.last_frame_age_s,
                database_reachable=self.db.health.state is DbState.OK,
                broker_session_valid=self.session.valid,
                active_triggers=len(engine.book),
                reconciling=engine.reconciling,
                accounts_login_required=lapsed,
                others_firing=self.executors is not None and bool(self.executors.live),
            )
        )

    def stats(self) -> dict[str, Any]:
        engine, stats = self.engine, self.engine.stats
        feed = self.feed.status()
        shown: dict[str, Any] = {
            "state": engine.state.value,
            "active_triggers": len(engine.book),
            "subscribed_instruments": len(engine.book.instruments()),
            "ticks_processed": stats.ticks_processed,
            "triggered_orders": stats.triggered_orders,
            "failed_orders": stats.failed_orders,
            "lost_claims": stats.lost_claims,
            "unresolved_orders": stats.unresolved,
            "reconciled_orders": stats.reconciled,
            "order_retries": stats.retries,
            "orders_queued": stats.orders_queued,
            "rate_limit_headroom": _headroom(stats.headroom()),  # the default account's (v1)
            "rate_limit_headroom_by_account": {
                account_id: _headroom(windows)
                for account_id, windows in (
                    {DEFAULT_ACCOUNT: stats.headroom()}
                    if self.executors is None
                    else self.executors.headroom()
                ).items()
            },
            "change_feed_lag_ms": round(stats.change_feed_lag_s * 1000, 3),
            "uptime_s": round(engine.uptime, 3),
            "ws": _shown(feed),
            "database": self.db.health.state.value,
            **stats.latency(),
            **({} if self.notifier is None else {"notifications": asdict(self.notifier.stats)}),
        }
        second = None if self.second_feed is None else self.second_feed()
        if second is not None:  # linked Upstox accounts' feed beside the default's
            shown["ws_upstox"] = _shown(second)
        if self.cluster is not None:
            shown["cluster"] = self.cluster.status()
        if self.recorder is not None:  # HMT_RECORD_TICKS: the recording's own counts
            shown["recording"] = {
                "recorded": self.recorder.recorded,
                "buffered": self.recorder.buffered,
                "dropped": self.recorder.dropped,
                "deleted_files": self.recorder.deleted,
            }
        return shown


def _headroom(windows: tuple[tuple[Limit, int], ...]) -> dict[str, dict[str, int]]:
    """One throttle's headroom by window name: the orders it would still take, of its limit."""
    return {
        WINDOW_NAMES.get(limit.seconds, f"{limit.seconds:g}s"): {"left": left, "limit": limit.count}
        for limit, left in windows
    }


def _shown(feed: FeedStatus) -> dict[str, Any]:
    return {
        "state": feed.state,
        "connected": feed.connected,
        "connections": feed.connections,
        "subscribed_tokens": feed.subscribed_tokens,
        "reconnects": feed.reconnects,
        "bad_frames": dict(feed.bad_frames),
        "last_frame_age_s": feed.last_frame_age_s,
        "ticks": feed.ticks,
        "ticks_by_connection": {
            str(link): count for link, count in sorted(feed.ticks_by_connection.items())
        },
    }
