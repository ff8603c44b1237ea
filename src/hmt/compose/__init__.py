"""The composition: builds a running hmt from its settings; the one package where adapters meet.

It reads `Settings`, connects and migrates the store, makes the broker's
clients (Kite's REST API and ticker, with `hmt.compose.kite`, or Upstox's REST
API and feed, `hmt.compose.upstox`, as HMT_BROKER and HMT_PAPER_BROKER choose;
paper mode points them at a simulator), and plugs them into the engine's ports.
It builds only: starting is `Runtime.start` (the supervisor: recovery, the book,
the ticker, then the expiry sweep, claim sweep, health monitor and change feed),
in the seed's order.

This package is the only one that names a broker: the engine, its session and
the API see the broker through `hmt.engine.ports`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from hmt.backtest.recording import TickRecorder
from hmt.cluster.connection import connect as connect_nats
from hmt.cluster.leases import DEFAULT_BUCKET, ClusterConfigError, LeaseKeeper, open_bucket
from hmt.cluster.order_slots import SlottedOrders
from hmt.compose.accounts import AccountMaker, StoredLogin
from hmt.compose.brokers import BrokerFeeds, BrokerSources, is_loopback
from hmt.compose.kite import (
    KiteLogin,
    TickerFeed,
    day_ranges,
    on_link_event,
    on_order_update,
)
from hmt.compose.slots import ClusterSlots, slot_wait_s
from hmt.compose.ticks import ClusterFeed, active_instruments
from hmt.compose.upstox import EngineUpstox, LinkedUpstox, paper_refusal
from hmt.config import (
    Broker,
    BrokerApi,
    ClaimDurability,
    ConfigError,
    Settings,
    SqliteWriters,
    TickMode,
)
from hmt.core.instruments import Instrument
from hmt.core.throttle import KITE_ORDER_LIMITS, UPSTOX_ORDER_LIMITS, Limit, Throttle
from hmt.core.types import InstrumentToken
from hmt.engine.accounts import AccountExecutors
from hmt.engine.bridge import Bridge, EngineLoop
from hmt.engine.channels import Channels
from hmt.engine.cluster import ClusterNode
from hmt.engine.executor import Executor, LeasePolicy, RetryPolicy
from hmt.engine.fills import Fills
from hmt.engine.instruments import InstrumentMaster
from hmt.engine.notices import Notifier, NotifyPolicy
from hmt.engine.ports import (
    BrokerLogin,
    BrokerRest,
    CandleSource,
    ChangeSource,
    Feed,
    InstrumentSource,
    OrderPort,
    QuotePort,
    TokenUser,
)
from hmt.engine.reminders import HealthNotices, LoginReminder
from hmt.engine.runtime import Runtime
from hmt.engine.sampler import Sampler
from hmt.engine.service import Engine, EngineConfig
from hmt.engine.session import BrokerSession
from hmt.engine.stats import EngineStats
from hmt.engine.supervisor import Supervisor, freeze_survivors
from hmt.kite.historical import KiteHistory
from hmt.kite.instruments import KiteInstruments
from hmt.kite.orders import KiteOrders
from hmt.kite.quotes import KiteQuotes
from hmt.kite.rest import KiteRest
from hmt.kite.segments import divisor_for
from hmt.kite.ticker import Ticker
from hmt.kite.ticker_messages import OrderUpdate
from hmt.kite.ticks import Mode, Tick
from hmt.logs import register_secret
from hmt.notify.deliver import deliver, load_plugins, screen
from hmt.store import migrate, samples
from hmt.store.accounts import AccountStore
from hmt.store.brackets import BracketStore
from hmt.store.changes import ChangeFeed
from hmt.store.channels import ChannelStore
from hmt.store.conditions import ConditionStore
from hmt.store.db import Database, create_engine
from hmt.store.execution import ExecutionStore
from hmt.store.linked import LinkedAccounts
from hmt.store.loading import PriceSource, RowPath
from hmt.store.sealing import Sealer
from hmt.store.tokens import TokenStore
from hmt.store.trails import TrailStates
from hmt.store.triggers import TriggerStore
from hmt.upstox.instruments import is_upstox_id

log = structlog.get_logger("hmt.compose")

# Kite counts orders when they arrive; a little slack on our side keeps network
# jitter from landing eleven in one of its seconds.
THROTTLE_MARGIN_S = 0.05
# hmt trades through one broker account; its sealed session is stored under this user.
ENGINE_ACCOUNT = "hmt-engine"
# Used in place of an access token until the first login: the broker refuses it (Kite
# 403, Upstox 401), so the engine waits in `login_required` and fires nothing.
AWAITING_LOGIN = "awaiting-kite-login"


class _Rest(BrokerRest, TokenUser, Protocol):
    """The broker's REST client: closed at the end, and given each new access token."""


class _Feed(Feed, TokenUser, Protocol):
    """The broker's price feed: given each new access token too."""


class SealedSession:
    """The engine account's session in the account store (sealed with HMT_SECRET_KEY);
    `api_key` names the app it belongs to (Kite's API key, Upstox's client id)."""

    def __init__(self, accounts: AccountStore, api_key: str) -> None:
        self._accounts = accounts
        self._api_key = api_key

    async def save(self, access_token: str) -> None:
        await self._accounts.save(
            ENGINE_ACCOUNT, api_key=self._api_key, access_token=SecretStr(access_token)
        )


async def build(settings: Settings) -> Runtime:
    """Connect and migrate the database and assemble the engine; nothing starts firing yet."""
    upstox = settings.broker_api is BrokerApi.UPSTOX
    account = _account(settings)
    for secret in (settings.kite_api_secret, settings.upstox_client_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if account.secret is not None:
        settings.require_secret_key()  # a login stores the session: it must be sealed
    _check_broker(settings)  # before the database or any socket is opened
    sealer = _sealer(settings)
    database = create_engine(settings.database_url, application_name="hmt-engine")
    await migrate.upgrade_at_start(database, enabled=settings.db_auto_upgrade)
    deferred_claims = settings.claim_durability == ClaimDurability.ASYNC
    db = Database(
        database,
        retries=settings.max_retries,
        backoff_ms=settings.retry_backoff_ms,
        queued_writers=settings.sqlite_writers is SqliteWriters.QUEUED,
        # Claims that do not wait for the disk get a pool whose connections say so once,
        # rather than a statement in each claim (docs/store.md).
        deferred=create_engine(
            settings.database_url, application_name="hmt-claims", deferred_flush=True
        )
        if deferred_claims
        else None,
    )
    accounts = None if sealer is None else AccountStore(db, sealer)
    try:
        access_token = await _access_token(settings, accounts)
    except Exception:
        await db.dispose()
        raise
    awaiting_login = access_token is None
    access_token = access_token or AWAITING_LOGIN
    register_secret(access_token)
    engine: Engine
    session: BrokerSession
    fills: Fills
    instruments: InstrumentMaster
    # Quote and full ticks carry the day's high and low (missed touches); LTP mode asks
    # the quote API after a blind spot instead, and decodes each frame only once.
    ranged = settings.tick_mode is not TickMode.LTP
    recorder = _recorder(settings)
    on_ltp: Callable[[int, int], object] = lambda token, ltp: engine.on_ltp(token, ltp)  # noqa: E731
    on_ticks: Callable[[tuple[Tick, ...]], object] | None = (
        (lambda ticks: day_ranges(engine, ticks)) if ranged else None
    )
    if recorder is not None:
        on_ltp, on_ticks = _recorded(recorder, on_ltp, settings.tick_mode, on_ticks)
    # A Kite cluster node's ticks come over NATS; its ticker runs while it holds the feed.
    ticks = None if settings.cluster_url is None or upstox else ClusterFeed(ranged)
    rest: _Rest
    orders: OrderPort
    feed: _Feed
    source: InstrumentSource
    quotes: QuotePort | None
    history: CandleSource | None
    login: BrokerLogin | None
    linked_upstox: LinkedUpstox | EngineUpstox | None = None
    divisor_of: Callable[[int], int]
    token_users: list[TokenUser] = []  # besides REST and the feed (Upstox's portfolio stream)
    more_loops: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    if upstox:
        # Imported only when chosen: Kite's start-up does not pay for Upstox's modules.
        from hmt.compose import upstox as wiring

        parts = wiring.upstox_parts(
            settings,
            access_token,
            on_ltp=on_ltp,
            # The portfolio stream's order updates, as Kite's ticker's: the fills hear of
            # a fill at once; the sweep every HMT_FILL_SWEEP_MS stays the fallback.
            on_order=lambda report: wiring.on_order_update(fills, report),
            on_portfolio_state=lambda state: wiring.on_portfolio_state(session, fills, state),
            read_master=lambda: instruments.copy(),
            awaiting_login=awaiting_login,
        )
        parts.feed.on_state = lambda state: wiring.on_feed_state(session, engine, fills, state)
        rest, orders, feed, source = parts.rest, parts.orders, parts.feed, parts.master
        token_users.append(parts.portfolio)
        more_loops.append(("portfolio_loop_failed", parts.portfolio.run))
        engine_feed: Feed = feed
        quotes, history, login = None, None, parts.login
        divisor_of = parts.master.divisor_of
        if ticks is None and settings.cluster_url is None:  # a cluster trades Kite alone
            # Linked Upstox accounts order through the engine's own master and feed.
            linked_upstox = EngineUpstox(settings, parts.master, lambda: instruments.copy())
    else:
        kite_rest = KiteRest(
            api_url=settings.kite_api_url,
            api_key=account.key,
            access_token=access_token,
            timeout=settings.kite_timeout_ms / 1000,
            client=settings.kite_http,
        )
        ticker_ltp, ticker_ticks, on_event, on_update = (
            (
                on_ltp,
                on_ticks,
                lambda event: on_link_event(session, engine, event, fills),
                lambda update: on_order_update(fills, update),
            )
            if ticks is None
            else ticks.kite_callbacks(lambda reason: session.expired(reason))
        )
        ticker = Ticker(
            settings.kite_ws_url,
            account.key,
            access_token,
            on_ltp=ticker_ltp,
            on_ticks=ticker_ticks,
            on_event=on_event,
            on_order_update=on_update,
            reconnect_delay_ms=settings.reconnect_delay_ms,
        )
        rest, orders = kite_rest, KiteOrders(kite_rest)
        feed, source = (
            TickerFeed(ticker, Mode(settings.tick_mode.value)),
            KiteInstruments(kite_rest),
        )
        if ticks is not None:
            ticks.broker, feed = feed, ticks
        history, login = KiteHistory(kite_rest), KiteLogin(settings)

        async def listed(tokens: Collection[int]) -> Mapping[int, Instrument]:
            copy, _ = await instruments.copy()
            if copy is None:
                return {}
            found = (copy.by_id.get(InstrumentToken(token)) for token in tokens)
            return {int(item.id): item for item in found if item is not None}

        quotes = KiteQuotes(kite_rest, listed)
        engine_feed, source, beside = _beside_kite(
            settings, feed, source, ticks, on_ltp, lambda: instruments
        )
        linked_upstox, divisor_of = beside, _kite_divisor(beside)
    triggers = TriggerStore(
        db,
        divisor_of=divisor_of,
        claims=settings.claim_statements.value,
        load_prices=PriceSource(settings.load_prices.value),
        load_rows=RowPath(settings.load_rows.value),
        partitions=settings.cluster_partitions,
    )
    # Claims carry this engine's id and a lease (docs/engine.md, "Two engines on one database").
    owner = settings.engine_instance()
    lease = settings.claim_lease_s
    execution = ExecutionStore(
        triggers,
        owner=owner,
        lease=timedelta(seconds=lease),
        durable_claims=not deferred_claims,
    )
    log.info("engine_identity", engine_id=owner, claim_lease_s=lease)
    stats = EngineStats()  # the engine's and the executor's counters, one object
    limits = UPSTOX_ORDER_LIMITS if upstox else KITE_ORDER_LIMITS
    placing = orders if settings.cluster_url is None else SlottedOrders(orders)
    executor = Executor(
        placing,
        execution,
        throttle=Throttle(limits, margin=THROTTLE_MARGIN_S),
        policy=RetryPolicy(
            max_retries=settings.max_retries, backoff=settings.retry_backoff_ms / 1000
        ),
        lease=LeasePolicy(
            length=lease,
            request_timeout=settings.broker_timeout_ms / 1000 + slot_wait_s(settings),
        ),
        rng=random.Random(),
        stats=stats,
    )
    # Several accounts (docs/accounts.md): the default account's executor above, and
    # one per linked account of this broker, each with its own throttle and session.
    executors = AccountExecutors(executor)
    linked = LinkedAccounts(db, sealer)
    maker = AccountMaker(
        settings,
        linked,
        execution,
        executors,
        stats,
        broker=settings.broker_api.value,
        engine=lambda: engine,
        upstox=linked_upstox,
    )
    session = BrokerSession(
        (rest, feed, *token_users),  # a new token reaches orders and ticks alike
        awaiting_login=awaiting_login,
        vault=None if accounts is None else SealedSession(accounts, account.key),
        login=login,
    )

    engine = Engine(
        source=execution,
        feed=engine_feed,
        executor=executors,
        clock=lambda: datetime.now(UTC),
        config=EngineConfig(
            enabled=settings.engine_enabled,
            resend_within=timedelta(seconds=60),
            time_grace=timedelta(seconds=settings.time_grace_s),
            broker=settings.broker.value,
            ranges_from_ticks=ranged,
            depth=settings.tick_mode is TickMode.FULL,
            trail_flush=timedelta(milliseconds=settings.trail_flush_ms),
            rehearse_every=settings.fire_rehearsal_us / 1_000_000,
        ),
        session=session,
        conditions=ConditionStore(triggers, triggers),
        quotes=quotes,
        stats=stats,
        trails=TrailStates(db),
        partitions=None if settings.cluster_url is None else settings.cluster_partitions,
    )
    cluster, maker.slots = await _join(
        settings,
        engine,
        execution,
        placing,
        limits,
        account,
        ticks,
        triggers,
        on_ltp,
        lambda: fills,
    )
    # A claim may not have reached the disk: after the database comes back, the engine
    # holds firing and reconciles with the broker's order book (docs/engine.md).
    db.reconnected.append(engine.database_reconnected)
    # The day's master is fetched at start-up in the background (the first create need
    # not wait for some 100,000 rows), and each copy is frozen out of the collector.
    instruments = InstrumentMaster(source, clock=lambda: datetime.now(UTC), kept=freeze_survivors)
    # Brackets: the entry orders' fills arm their exits (docs/engine.md, "Brackets"); an
    # entry through a linked account is looked up in that account's book only.
    fills = Fills(
        BracketStore(triggers),
        orders,
        lambda exit_id: engine.refresh(exit_id),
        book_of=executors.book_of,
        interval=settings.fill_sweep_ms / 1000,
    )
    notifier, channels = _notifications(settings, db, sealer)
    reminder = None
    if notifier is not None:
        engine.notify = notifier.notice
        reminder = LoginReminder(
            session, notifier.notice, lambda: datetime.now(UTC), settings.login_link()
        )
        session.on_expired.append(reminder.expired)
    runtime: Runtime
    supervisor = Supervisor(
        engine,
        expire_due=triggers.expire_due,
        health=lambda: runtime.health(),
        ping=db.ping,
        health_interval=settings.health_check_interval_ms / 1000,
        claim_sweep_interval=lease / 2,
        changes=_change_feed(settings) if db.dialect == "postgresql" else None,
        warm=[] if awaiting_login else [instruments.copy],
        conditions=engine.conditions,
        sampler=Sampler(
            stats=stats,
            feed=feed.status,
            health=lambda: runtime.health(),
            write=lambda sample: samples.write(db, owner, sample),
            compact=lambda now: samples.compact(db, owner, now),
            clock=lambda: datetime.now(UTC),
            interval=settings.metrics_sample_s,
        ),
        on_health=None if notifier is None else HealthNotices(notifier.notice),
        loops=[("fill_loop_failed", fills.run), *more_loops]
        + ([] if reminder is None else [("reminder_loop_failed", reminder.run)]),
        trails=engine.trails.enabled,
        rehearsals=settings.fire_rehearsal_us > 0,
    )
    runtime = Runtime(
        settings=settings,
        db=db,
        triggers=triggers,
        tokens=TokenStore(db),
        engine=engine,
        session=session,
        supervisor=supervisor,
        feed=feed,
        rest=rest,
        instruments=instruments,
        accounts=accounts,
        recorder=recorder,
        history=history,
        notifier=notifier,
        channels=channels,
        fills=fills,
        cluster=cluster,
        linked=linked,
        executors=executors,
        add_account=maker.add,
        remove_account=maker.remove,
        store_login=StoredLogin(settings, linked),
        closing=maker.rests,
        brokers=frozenset(b for b in ("kite", "upstox") if maker.trades(b))
        | {settings.broker_api.value},
        broker_of=lambda token: "upstox" if is_upstox_id(token) else "kite",
        second_feed=engine_feed.second_status if isinstance(engine_feed, BrokerFeeds) else None,
    )
    await maker.add_stored()
    return runtime


def _beside_kite(
    settings: Settings,
    feed: Feed,
    source: InstrumentSource,
    ticks: ClusterFeed | None,
    on_ltp: Callable[[int, int], object],
    master: Callable[[], InstrumentMaster],
) -> tuple[Feed, InstrumentSource, LinkedUpstox | None]:
    """A Kite engine's feed and master for the engine, and the linked Upstox accounts'
    shared parts (docs/accounts.md, "Two brokers in one process"): Upstox ids are
    subscribed on Upstox's feed and listed in Upstox's master once one is linked. A
    cluster node trades Kite alone; paper mode whose Upstox addresses are not loopback
    too (RELIABILITY test 22)."""
    if ticks is not None:
        return feed, source, None
    feeds, sources = BrokerFeeds(feed, is_upstox_id), BrokerSources(source, is_upstox_id)
    refused = paper_refusal(settings)
    if refused is not None:
        log.info("upstox_accounts_not_traded", reason=refused)
        return feeds, sources, None

    async def read_master() -> object:
        return await master().copy()

    linked = LinkedUpstox(
        settings,
        on_ltp=on_ltp,
        feeds=feeds,
        sources=sources,
        read_master=read_master,
        expire_master=lambda: master().expire(),
    )
    return feeds, sources, linked


def _kite_divisor(linked_upstox: LinkedUpstox | None) -> Callable[[int], int]:
    """Rows other tools stored without a price divisor are read with the broker's rule:
    Kite's, or for an Upstox id its master's."""
    if linked_upstox is None:
        return divisor_for

    def divisor_of(token: int) -> int:
        if is_upstox_id(token):
            return linked_upstox.divisor_of(token)
        return divisor_for(token)

    return divisor_of


async def _node(settings: Settings, engine: Engine, execution: ExecutionStore) -> ClusterNode:
    """The cluster node, its claims fenced by the partitions' lease tokens; the database
    closed if it cannot be made."""
    try:
        node = await _cluster_node(settings, engine, execution.triggers)
    except Exception:
        await execution.triggers.db.dispose()
        raise
    execution.fencing = node.token  # a claim carries the partition's lease token
    return node


async def _cluster_node(settings: Settings, engine: Engine, triggers: TriggerStore) -> ClusterNode:
    """HMT_CLUSTER_URL: connect to NATS and open the lease bucket (docs/cluster.md).

    A bucket made with another lease TTL or partition count is refused here, naming both
    values, before anything starts. Leases are taken only once the runtime has started."""
    assert settings.cluster_url is not None
    node_id = settings.cluster_node_id()
    ttl = settings.cluster_lease_ttl_s
    nc = await connect_nats(settings.cluster_url, ttl, name=node_id)
    try:
        await open_bucket(nc, DEFAULT_BUCKET, ttl, partitions=settings.cluster_partitions)
        keeper = LeaseKeeper(nc, node_id, partitions=settings.cluster_partitions, ttl_s=ttl)
    except ClusterConfigError as error:
        await nc.close()
        raise ConfigError(str(error)) from None
    except BaseException:
        await nc.close()
        raise
    log.info("cluster_node", node=node_id, url=settings.cluster_url, lease_ttl_s=ttl)
    return ClusterNode(nc, keeper, engine, repartition=triggers.repartition)


async def _join(
    settings: Settings,
    engine: Engine,
    execution: ExecutionStore,
    placing: OrderPort,
    limits: tuple[Limit, ...],
    account: Account,
    ticks: ClusterFeed | None,
    triggers: TriggerStore,
    on_ltp: Callable[[int, int], object],
    fills: Callable[[], Fills],
) -> tuple[ClusterNode | None, ClusterSlots | None]:
    """A cluster node's parts (None on a single node): its leases, the default account's
    order slots (docs/cluster.md, "Orders": the node holding the account's lease grants
    every node's; linked accounts get theirs from the same `ClusterSlots` as they are
    added), its ticks over NATS."""
    if settings.cluster_url is None:
        return None, None
    node = await _node(settings, engine, execution)
    slots = ClusterSlots(settings, node)
    if isinstance(placing, SlottedOrders):
        placing.slots = (await slots.slots(account.broker, account.key, limits)).client
    _attach_ticks(ticks, node, account.key, engine, triggers, on_ltp, fills)
    return node, slots


def _attach_ticks(
    ticks: ClusterFeed | None,
    node: ClusterNode | None,
    api_key: str,
    engine: Engine,
    triggers: TriggerStore,
    on_ltp: Callable[[int, int], object],
    fills: Callable[[], Fills],
) -> None:
    """A cluster node's ticks over NATS (docs/cluster.md, "Ticks"): the engine fed from
    its partitions' subjects; the ticker run while this node holds the feed lease, over
    the instruments of every partition (the store's active triggers, and what owners
    announce); the feed lease given back before the node's NATS connection closes."""
    if ticks is None or node is None:
        return

    def order_update(data: dict[str, Any]) -> None:
        on_order_update(fills(), OrderUpdate(data))

    ticks.attach(
        node.nc,
        node.keeper,
        api_key,
        instruments=lambda: active_instruments(triggers.db),
        on_ltp=on_ltp,
        on_range=engine.on_range,
        on_depth=engine.on_depth,
        on_lost=engine.feed_lost,
        on_connected=lambda: fills().poke(),
        on_order_update=order_update,
    )
    node.stopping.append(ticks.release)


def _recorder(settings: Settings) -> TickRecorder | None:
    if settings.record_ticks is None:
        return None
    log.info("recording_ticks", directory=str(settings.record_ticks), max_mb=settings.record_max_mb)
    return TickRecorder(settings.record_ticks, max_bytes=settings.record_max_mb * 1024 * 1024)


def _recorded(
    recorder: TickRecorder,
    on_ltp: Callable[[int, int], object],
    mode: TickMode,
    on_ticks: Callable[[tuple[Tick, ...]], object] | None,
) -> tuple[Callable[[int, int], object], Callable[[tuple[Tick, ...]], object] | None]:
    """The ticker's callbacks with the recorder in front of the engine's.

    Full mode's ticks carry the exchange's timestamp, which the LTP path does not
    decode: there each tick is recorded from the typed ticks (the same ticks, in
    the same order, handed on just after the LTPs); otherwise as the engine is
    handed it.
    """
    record = recorder.record
    if mode is not TickMode.FULL:

        def recorded_ltp(token: int, ltp: int) -> None:
            record(token, ltp)
            on_ltp(token, ltp)

        return recorded_ltp, on_ticks

    def recorded_ticks(ticks: tuple[Tick, ...]) -> None:
        for tick in ticks:
            stamp = getattr(tick, "exchange_timestamp", None) or 0
            record(tick.instrument_token, tick.last_price, stamp)
        if on_ticks is not None:
            on_ticks(ticks)

    return on_ltp, recorded_ticks


def _sealer(settings: Settings) -> Sealer | None:
    """HMT_SECRET_KEY's sealer (None unset); several keys while rotating: the first seals."""
    if settings.secret_key is None:
        return None
    register_secret(settings.secret_key.get_secret_value())
    for key in settings.sealing_keys():
        register_secret(key)
    return Sealer(settings.sealing_keys())


def _notifications(
    settings: Settings, db: Database, sealer: Sealer | None
) -> tuple[Notifier | None, Channels | None]:
    """The notifier and the channels' store: only with HMT_SECRET_KEY, which seals the URLs."""
    if sealer is None:
        return None, None
    allowed = settings.notify_allowed
    timeout = settings.notify_timeout_ms / 1000
    store = ChannelStore(db, sealer)
    # Now, not in the first send: loading apprise's plugins holds the interpreter for
    # about a second, which must not happen while orders are being placed.
    load_plugins()

    def send(url: str, title: str, body: str) -> None:
        deliver(url, title, body, allowed, timeout=timeout)

    def check(url: str) -> str:
        return screen(url, allowed).hint

    notifier = Notifier(
        store,
        send,
        NotifyPolicy(limit=settings.notify_queue, attempts=settings.notify_retries + 1),
    )
    return notifier, Channels(store, notifier, check)


async def bridge(runtime: Runtime, engine_loop: EngineLoop) -> Bridge:
    """The running hmt for an API on another loop (call it on that loop): its own
    database connections, the engine reached on `engine_loop` (hmt.engine.bridge)."""
    settings = runtime.settings
    database = create_engine(settings.database_url, application_name="hmt-api")
    db = Database(
        database,
        retries=settings.max_retries,
        backoff_ms=settings.retry_backoff_ms,
        queued_writers=settings.sqlite_writers is SqliteWriters.QUEUED,
    )
    return Bridge(
        runtime,
        engine_loop,
        db=db,
        # The engine's clock, read when used (a test may set the runtime's).
        triggers=TriggerStore(
            db,
            clock=lambda: runtime.triggers.clock(),
            divisor_of=runtime.triggers.divisor_of,  # the broker's rule, as the engine's
        ),
        tokens=TokenStore(db),
    )


def _change_feed(settings: Settings) -> Callable[[], ChangeSource]:
    def listen() -> ChangeSource:
        return ChangeFeed(
            settings.database_url,
            application_name="hmt-listener",
            reconnect_delay=settings.reconnect_delay_ms / 1000,
        )

    return listen


@dataclass(frozen=True, slots=True)
class Account:
    """The one broker account hmt trades through, as the settings name it."""

    broker: str  # "Kite" or "Upstox", for messages
    key: str  # the app it belongs to: Kite's API key, Upstox's client id
    token: SecretStr | None  # HMT_KITE_ACCESS_TOKEN or HMT_UPSTOX_ACCESS_TOKEN
    secret: SecretStr | None  # what a login needs: HMT_KITE_API_SECRET, HMT_UPSTOX_CLIENT_SECRET
    names: tuple[str, str]  # the settings of `token` and `secret`, for messages
    login_path: str  # where the trader logs in


def _account(settings: Settings) -> Account:
    if settings.broker_api is BrokerApi.UPSTOX:
        return Account(
            "Upstox",
            settings.upstox_client_id or "",
            settings.upstox_access_token,
            settings.upstox_client_secret,
            ("HMT_UPSTOX_ACCESS_TOKEN", "HMT_UPSTOX_CLIENT_SECRET"),
            "/upstox/login",
        )
    return Account(
        "Kite",
        settings.kite_api_key or "",
        settings.kite_access_token,
        settings.kite_api_secret,
        ("HMT_KITE_ACCESS_TOKEN", "HMT_KITE_API_SECRET"),
        "/kite/login",
    )


async def _access_token(settings: Settings, accounts: AccountStore | None) -> str | None:
    """The access token setting, else the stored session, else None when a login can get one."""
    account = _account(settings)
    if account.token is not None:
        return account.token.get_secret_value()
    if accounts is not None:
        try:
            stored = await accounts.load(ENGINE_ACCOUNT)
        except InvalidTag:
            log.warning(
                "stored_session_unreadable",
                reason=f"sealed with another HMT_SECRET_KEY: log in again ({account.login_path})",
            )
            stored = None
        usable = stored is not None and stored.api_key == account.key
        if usable and stored is not None and stored.access_token is not None:
            log.info("broker_session_loaded", updated_at=stored.updated_at.isoformat())
            return stored.access_token.get_secret_value()
    token_name, secret_name = account.names
    if account.secret is not None:
        log.warning(
            "login_required",
            reason=f"no {account.broker} access token yet: log in ({account.login_path})",
        )
        return None
    sim = "`hmt sim`" if account.broker == "Kite" else "`hmt sim --broker upstox`"
    raise ConfigError(
        f"{token_name} is not set and no {account.broker} session is stored: set it, or set "
        f"{secret_name} and HMT_SECRET_KEY and log in ({account.login_path}) (for the "
        f"simulator, {sim} prints the settings)"
    )


def _check_broker(settings: Settings) -> None:
    """Refuse settings that cannot work, and paper mode aimed at a live broker (test 22)."""
    if settings.broker_api is BrokerApi.UPSTOX:
        urls = {
            "HMT_UPSTOX_API_URL": settings.upstox_api_url,
            "HMT_UPSTOX_ORDER_URL": settings.upstox_orders_url,
            "HMT_UPSTOX_MASTER_URL": settings.upstox_master,
        }
        key_name, key, sim = "HMT_UPSTOX_CLIENT_ID", settings.upstox_client_id, "upstox"
    else:
        urls = {"HMT_KITE_API_URL": settings.kite_api_url, "HMT_KITE_WS_URL": settings.kite_ws_url}
        key_name, key, sim = "HMT_KITE_API_KEY", settings.kite_api_key, "kite"
    if settings.broker is Broker.PAPER:
        for name, url in urls.items():
            if not is_loopback(url):
                # Paper mode must never reach a real broker: its orders are pretend.
                raise ConfigError(
                    f"HMT_BROKER=paper needs the simulator, but {name} is {url}: start "
                    f"`hmt sim --broker {sim}` and use the settings it prints (every one "
                    f"of {', '.join(urls)} on loopback), or set HMT_BROKER={sim} for a "
                    "real account"
                )
    if not key:
        command = "hmt sim" if sim == "kite" else "hmt sim --broker upstox"
        raise ConfigError(
            f"{key_name} must be set (for the simulator, `{command}` prints the settings)"
        )
    if settings.broker_api is BrokerApi.UPSTOX and settings.tick_mode is not TickMode.LTP:
        raise ConfigError(
            f"HMT_TICK_MODE={settings.tick_mode.value} is Kite's only for now: Upstox's feed "
            "is wired in LTP mode (HMT_TICK_MODE=ltp; docs/upstox/WIRING.md)"
        )
