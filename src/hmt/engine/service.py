"""The engine service: ticks in, orders out, the book kept equal to the store's active set.

On a tick the book decides synchronously which legs fire and drops them
before the handler returns; each fired leg's claim and order then run in
their own task, so the tick path never waits on the database or the broker.
Every change to a trigger — from the API, the PostgreSQL change feed or the
engine's own outcomes — goes through `refresh`, which re-reads the row and
puts the book in step with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from hmt.core.book import BookBuilder, TriggerBook
from hmt.core.brackets import may_be_exit
from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.events import EventKind
from hmt.core.gaps import DayRange
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.notices import Notice, NoticeKind
from hmt.core.partitions import partition_of
from hmt.core.prices import to_decimal
from hmt.core.rules import direction
from hmt.core.timebook import TimeBook
from hmt.core.trail_gaps import touched
from hmt.core.trailing import TrailState
from hmt.core.types import (
    Cause,
    Direction,
    Exchange,
    InstrumentToken,
    Leg,
    OnGap,
    OrderType,
    Product,
    Side,
    TriggerId,
    TriggerType,
    UserId,
)
from hmt.engine import story
from hmt.engine.accounts import DEFAULT_ACCOUNT, AccountExecutors, Linked
from hmt.engine.conditions import BlindSpot, DayRanges, Dormant, ist_day
from hmt.engine.events import EventHub
from hmt.engine.executor import GIVEN_UP, AuthExpired, Executor, Outcome
from hmt.engine.ports import ConditionStore, Feed, QuotePort, TriggerSource
from hmt.engine.session import BrokerSession
from hmt.engine.stats import EngineStats
from hmt.engine.trails import TrailKeeper, TrailPort
from hmt.waits import woken

log = structlog.get_logger("hmt.engine")

# Legs sorted between two turns of the loop while a load builds the book (about 10 ms).
LOAD_STEP_LEGS = 50_000
# While the broker's order book cannot be read, firing stays held and the read is
# retried after 1 s, doubling to at most 30 s.
RECONCILE_RETRY_S = 1.0
RECONCILE_RETRY_CAP_S = 30.0
# The timer loop wakes at least this often (a hold released, a session renewed, a clock
# step); an earlier time added to a book wakes it at once.
TIMER_POLL_S = 1.0
# Kite's quote API takes 1 request a second and 1,000 instruments a request (FACTS 2.4).
QUOTE_INTERVAL_S = 1.0
QUOTE_BATCH = 1000
# A feed without a tick for this long is quiet: the rehearsal loop (`Engine.run_rehearsals`)
# rests, and looks for ticks this often.
REHEARSAL_QUIET_S = 0.05
# The rehearsals' trigger (`Engine.run_rehearsals`): on an instrument no broker numbers,
# it fires at its own price in a book of its own, never the engine's.
_REHEARSAL = Trigger(
    TriggerId("rehearsal"),
    UserId("rehearsal"),
    InstrumentToken(-1),
    Exchange.NSE,
    "REHEARSAL",
    TriggerType.SINGLE,
    Side.BUY,
    1,
    None,
    1,
    Product.CNC,
    OrderType.MARKET,
)
# And one it never reaches, so that the probe keeps its instrument, as a fire usually does.
_REHEARSAL_REST = dataclasses.replace(
    _REHEARSAL, id=TriggerId("rehearsal-rest"), trigger_price_1=2**31
)


class EngineState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    # Reported, never set: running while the broker session is not valid; nothing fires.
    LOGIN_REQUIRED = "login_required"
    DISABLED = "disabled"  # HMT_ENGINE_ENABLED=false


@dataclass(frozen=True, slots=True)
class EngineConfig:
    enabled: bool = True
    # After a crash, an order not found at the broker is sent again only if it
    # was claimed this recently; older ones fail, since the price has moved on.
    resend_within: timedelta = timedelta(seconds=60)
    # A time leg found due later than this (the engine was down, held or logged out)
    # ends its trigger `expired` instead of firing (HMT_TIME_GRACE_S).
    time_grace: timedelta = timedelta(seconds=60)
    broker: str = "kite"  # the day ranges' key in the store
    # Quote/full ticks carry the day's OHLC; in LTP mode the quote API is asked instead.
    ranges_from_ticks: bool = False
    # Full ticks carry depth: legs trailing the bid or ask move by it (`on_depth`), else
    # by the LTP like the others (docs/triggers.md, "Trailing stops").
    depth: bool = False
    # How often trailing stops that moved are written (HMT_TRAIL_FLUSH_MS).
    trail_flush: timedelta = timedelta(seconds=1)
    # Seconds between rehearsals of the firing path while ticks flow; 0: none
    # (HMT_FIRE_REHEARSAL_US; docs/engine.md, "The evaluate path in the run").
    rehearse_every: float = 0.0


class Engine:
    """One broker account's triggers, watched and executed."""

    def __init__(
        self,
        *,
        source: TriggerSource,
        feed: Feed,
        executor: Executor | AccountExecutors,
        clock: Callable[[], datetime],
        config: EngineConfig | None = None,
        session: BrokerSession | None = None,
        conditions: ConditionStore | None = None,
        quotes: QuotePort | None = None,
        stats: EngineStats | None = None,
        trails: TrailPort | None = None,
        partitions: int | None = None,
    ) -> None:
        """`stats`: shared with the executor, which counts claims, retries and its queue.

        `partitions`: a cluster node's partition count (docs/cluster.md). The engine
        then holds only the triggers of the partitions it is given
        (`partition_gained`), none at first; None: every trigger (one engine)."""
        self._config = config or EngineConfig()
        self.book = self._new_book()
        # Trailing stops' states: written periodically, resumed after a restart.
        self.trails = TrailKeeper(trails)
        # Time legs, beside the price book: every trigger added to or removed from one
        # is added to or removed from the other (`_put`, `_take`).
        self.timebook = TimeBook()
        self._dormant = Dormant()  # not_before still ahead: in neither book
        self._timer_wake = asyncio.Event()
        # Missed touches (docs/engine.md): without a store for them, none are looked for.
        self._conditions = conditions
        self._quotes = quotes
        self.ranges = DayRanges()
        self._blind: dict[int, BlindSpot] = {}
        # Per blind instrument, its trailing stops when the blind spot began.
        self._blind_stops: dict[int, dict[tuple[TriggerId, Leg], int]] = {}
        self._seed: set[int] = set()  # LTP mode: ranges to read from the quote API
        self._exit_check = asyncio.Lock()  # bracket exits reconciled one at a time
        self.stats = stats or EngineStats()
        self._state = EngineState.STOPPED
        # Whether the broker takes our orders is the session's to say, not the engine's.
        self.session = session or BrokerSession()
        self._source = source
        self._feed = feed
        self._executor = executor
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_at: float | None = None
        self.last_ltp: dict[int, int] = {}  # per instrument, for create-time warnings
        # Firing is held until the broker's order book has been read and every row it
        # contradicts settled: at start-up and after a database reconnection, since a
        # claim that did not wait for the disk may have been lost (docs/engine.md).
        self.holding = True
        self.rehearsals = 0  # of the firing path (`run_rehearsals`)
        self._reconciling: asyncio.Task[None] | None = None
        self._reconcile_again = False  # asked again while a read was under way
        self._rebuild_wanted = False  # a reconnection: rebuild the book after the read
        self._in_flight: set[TriggerId] = set()  # triggers whose order task is running
        # While the book is rebuilt from the store: the ids `arm` and `refresh` changed in
        # the book being replaced, put in step again with the store once it is swapped in.
        # Starting, the same: without a change feed (SQLite) nothing else would bring in
        # what the start-up load read too early.
        self._touched: set[TriggerId] | None = None
        self._wake = asyncio.Event()  # a new broker session: read the book now
        self.session.on_valid.append(self._wake.set)
        # With linked accounts, the default account is one of them: its lapse parks only
        # its triggers, and a book read that had to skip it is made up before they go.
        self._default_unread = False
        self.session.on_valid.append(self._default_valid)
        self.events = EventHub()  # live viewers; costs one test per tick when there are none
        # Notices (docs/notifications.md): queued, never awaited; None sends none.
        self.notify: Callable[[Notice], None] | None = None
        # Each running fire's start (perf counter) and owner: its outcome's latency and notice.
        self._fired_at: dict[TriggerId, tuple[float, str]] = {}
        self._untold: dict[TriggerId, Fired] = {}  # fired, not told yet (`_tell_fire`)
        executor.on_outcome = self._settled
        # Several accounts (docs/accounts.md): the fired triggers of a linked account
        # that is not live, kept out of the book until it is (`account_renewed`).
        self._parked: dict[str, set[TriggerId]] = {}
        if isinstance(executor, AccountExecutors):
            executor.on_renewed = lambda account: self._spawn(self.account_renewed(account))
        self._partitions = partitions
        # A cluster node's partitions, as the engine holds them (loaded or loading).
        self._held: set[int] | None = None if partitions is None else set()
        # Per partition load under way, the ids refreshed meanwhile (by identity: two
        # loads' sets may be equal).
        self._gaining: dict[int, set[TriggerId]] = {}
        self._started = asyncio.Event()  # start() has loaded the book (or given up)

    # --- lifecycle --------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        """The lifecycle state; `login_required` while running on an invalid broker session."""
        if self._state is EngineState.RUNNING and not self.session.valid:
            return EngineState.LOGIN_REQUIRED
        return self._state

    @property
    def reconciling(self) -> bool:
        """Firing is held until the broker's order book has been read, with a session to
        read it. A stored row may then be behind the broker (a claim lost with the
        database), so the API refuses to change existing triggers meanwhile."""
        live = self._state in (EngineState.STARTING, EngineState.RUNNING)
        return self.holding and live and self._readable

    async def start(self) -> None:
        """The seed's start-up order: kill switch, recover, load, subscribe, connect."""
        if not self._config.enabled:
            self._state = EngineState.DISABLED
            log.warning("engine_disabled", reason="HMT_ENGINE_ENABLED is false")
            return
        if self._state is not EngineState.STOPPED:
            return
        self._state = EngineState.STARTING
        self._started.clear()
        self.holding = True
        touched: set[TriggerId] = set()
        self._touched = touched
        # Before recovery and the load: nothing fires yet (not with no session to read it).
        reconciled = self._readable and await self._reconcile_safely()
        await self.recover()
        for expired in await self._source.expire_due():
            self._take(expired)
        # Built aside and swapped in: in STARTING nothing reads or changes the book.
        self.book, self.timebook, self._dormant, loaded = await self._load()
        await self._load_trails()
        await self._load_ranges()
        self._feed.subscribe(self.book.instruments())
        await self._feed.start()
        self._started_at = time.monotonic()
        self._state = EngineState.RUNNING
        self._touched = None
        self._started.set()
        if reconciled:
            self.holding = False
        else:  # the book could not be read: keep firing held and read it again
            self._hold(rebuild=False)
        # Created or changed while starting, read again after the hold is decided (a tick
        # arriving while they are read is evaluated, not dropped as held).
        for trigger_id in touched - self._in_flight:
            await self.refresh(trigger_id)
        log.info(
            "engine_started",
            triggers=loaded,
            instruments=len(self.book.instruments()),
            holding=self.holding,
        )

    async def stop(self) -> None:
        """Let in-flight orders finish, then close the feed and forget the book."""
        if self._state in (EngineState.STOPPED, EngineState.DISABLED):
            return
        self._state = EngineState.STOPPED
        self._touched = None
        self._started.set()  # a gain waiting for the start ends
        if self._reconciling is not None:
            self._reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciling
            self._reconciling = None
        await self.drain()
        await self._feed.stop()
        self._feed.unsubscribe(self.book.instruments())
        try:
            await self.save_ranges()
        except Exception:  # the store is away: the next start compares with older ranges
            log.exception("day_ranges_unsaved")
        try:
            await self.flush_trails()
        except Exception:  # the store is away: the next start resumes from older stops
            log.exception("trail_states_unsaved")
        self.book = self._new_book()
        self.timebook = TimeBook()
        self._dormant = Dormant()
        self._blind.clear()
        self._blind_stops.clear()
        self._seed.clear()
        self._started_at = None
        log.info("engine_stopped")

    # --- reconciliation with the broker's order book -----------------------------------

    async def reconcile(self) -> bool:
        """Read the broker's order book once and settle every row it shows ordered.

        Every `active` or `triggered` trigger whose tag is in the book is settled
        as placed (the store's `reconcile`); those this process is settling
        itself are left to their task. False if the book could not be read.
        """
        executor = self._executor
        skip_default = self._shares_firing and not self.session.valid
        try:
            if isinstance(executor, AccountExecutors):
                orders = await executor.orders(default=not skip_default)
            else:
                orders = await executor.orders()
        except BrokerError as error:
            if error.kind is ErrorKind.AUTH:
                self.session.expired(error.message)
            log.warning("order_book_unreadable", error=str(error))
            return False
        # The default account's book is read before its triggers go again (its login).
        self._default_unread = skip_default
        settled = await self._source.reconcile(
            orders, self._executor.tag, skip=frozenset(self._in_flight)
        )
        for item in settled:
            self.stats.reconciled += 1
            await self.refresh(item.trigger_id, checked=True)  # out of the book, if loaded
        log.info("reconciled_with_broker", orders=len(orders), settled=len(settled))
        return True

    def database_reconnected(self) -> None:
        """The database answers again after a failure: claims may have been lost with it.

        Holds firing at once (synchronously, before any other task runs) and
        reconciles, then rebuilds the book (rows whose claim was lost are active
        again), then fires again.
        """
        if self._state is EngineState.RUNNING:
            log.warning("database_reconnected", action="holding firing to reconcile")
            self._hold(rebuild=True)

    def _hold(self, *, rebuild: bool) -> None:
        self.holding = True
        if self._state is not EngineState.RUNNING:  # start() reconciles again anyway
            return
        self._rebuild_wanted |= rebuild
        if self._reconciling is not None and not self._reconciling.done():
            self._reconcile_again = True  # a later reconnection: read the book after it
            return
        self._reconciling = asyncio.get_running_loop().create_task(self._reconcile_until_read())

    async def _reconcile_until_read(self) -> None:
        """Retry the read until it succeeds; firing stays held meanwhile (never guessed)."""
        delay = RECONCILE_RETRY_S
        while True:
            self._reconcile_again = False
            read = self._readable and await self._reconcile_safely()
            # After a reconnection the book is rebuilt too (a store failure: all again).
            if read and (not self._rebuild_wanted or await self._rebuilt()):
                if not self._reconcile_again:
                    self.holding = False
                    log.info("firing_resumed")
                    return
                continue  # asked again meanwhile: read again at once
            self._wake.clear()
            await woken(self._wake, delay)
            delay = min(delay * 2, RECONCILE_RETRY_CAP_S)

    async def _rebuilt(self) -> bool:
        """The book rebuilt from the store (see `_rebuild_book`); False if the store failed."""
        try:
            await self._rebuild_book()
        except Exception:
            log.exception("rebuild_failed")
            return False
        self._rebuild_wanted = False
        return True

    async def _reconcile_safely(self) -> bool:
        try:
            return await self.reconcile()
        except Exception:  # the store failed: held, and read again
            log.exception("reconcile_failed")
            return False

    async def _claim_rolled_back(self, trigger_id: TriggerId) -> None:
        """A fired trigger whose row reads `active` again lost its claim with the database
        (its outcome could not be written): reconcile, then rebuild (re-arm it if unordered)."""
        try:
            rolled_back = await self._source.active(trigger_id) is not None
        except Exception:  # the database is away: its reconnection reconciles
            return
        if rolled_back:
            log.warning("claim_rolled_back", trigger_id=trigger_id)
            self._hold(rebuild=True)

    async def recover(self) -> None:
        """Settle, before anything can fire, this engine's claims a crash left `triggered`,
        and every other engine's claim whose lease has expired."""
        leased_at = asyncio.get_running_loop().time()
        for left in await self._source.adopt(own=True, tag_of=self._executor.tag):
            await self._settle(left, leased_at)

    async def settle_expired(self) -> int:
        """Settle every claim whose lease has expired: its engine died, or gave up.

        Run periodically (the supervisor's claim sweep, every half lease) by every
        engine, so a claim left by an engine that was SIGKILLed is settled
        within about one lease and a half, whether or not it restarts. Each
        adopted claim is settled in its own task; returns how many were adopted.
        """
        leased_at = asyncio.get_running_loop().time()
        adopted = await self._source.adopt(own=False, tag_of=self._executor.tag)
        for left in adopted:
            self._spawn(self._settle_adopted(left, leased_at))
        return len(adopted)

    async def _settle_adopted(self, left: InFlight, leased_at: float) -> None:
        try:
            await self._settle(left, leased_at)
        except AuthExpired as error:
            self._expire(left.intent.account, str(error))
        except Exception:
            # The row stays `triggered`; its lease runs out and a later sweep tries again.
            self.stats.unresolved += 1
            log.exception("order_task_failed", trigger_id=left.intent.trigger_id)
        finally:
            # Released (an expired session) puts it back in the book; live viewers hear of it.
            await self.refresh(left.intent.trigger_id)

    async def _settle(self, left: InFlight, leased_at: float) -> None:
        """Settle one adopted claim: by tag first; sent again only if it is recent.

        A basket's unsettled orders are settled one by one in listed order, each
        by the same rules (a placed or failed order is never among them), then
        the trigger finishes.
        """
        now = self._clock()
        recent = left.triggered_at is not None and now - left.triggered_at <= (
            self._config.resend_within
        )
        if left.basket:
            settled = await self._executor.settle_basket(
                left.basket, ambiguous=True, resend=recent, leased_at=leased_at
            )
            log.info("recovered", trigger_id=left.intent.trigger_id, outcome=settled.value)
            return
        if recent:
            outcome: Outcome | None = await self._executor.settle(
                left.intent, ambiguous=True, leased_at=leased_at
            )
        else:
            outcome = await self._executor.resolve(left.intent, leased_at=leased_at)
        if outcome is None:
            await self._source.give_up(left.intent.trigger_id, GIVEN_UP)
            outcome = Outcome.FAILED
        log.info("recovered", trigger_id=left.intent.trigger_id, outcome=outcome.value)

    # --- the tick path ------------------------------------------------------------

    def on_ltp(self, instrument_token: int, ltp: int) -> None:
        """Called by the feed for every (token, price); never awaits."""
        self.stats.ticks_processed += 1
        self.last_ltp[instrument_token] = ltp
        # The day's range as seen (missed touches): inline, this is the tick path.
        seen = self.ranges.values.get(instrument_token)
        if seen is None:
            self.ranges.values[instrument_token] = [ltp, ltp]
            self.ranges.changed.add(instrument_token)
        elif ltp > seen[0]:
            seen[0] = ltp
            self.ranges.changed.add(instrument_token)
        elif ltp < seen[1]:
            seen[1] = ltp
            self.ranges.changed.add(instrument_token)
        if self.events.listening:
            self.events.price(instrument_token, ltp)
        if self._state is not EngineState.RUNNING or self.holding:
            return
        if not self.session.valid and not self._shares_firing:
            return
        started = time.perf_counter()  # before the book: evaluation is part of the path
        fired = self.book.on_tick(instrument_token, ltp)
        if fired:
            self._fire(instrument_token, fired, started)

    def on_depth(self, instrument_token: int, ltp: int, bid: int, ask: int) -> None:
        """A full tick's best bid and ask, after its LTP went through `on_ltp`: the legs
        trailing them move (and may fire at `ltp`). Never awaits."""
        if not self._can_fire():
            return
        started = time.perf_counter()
        fired = self.book.on_depth(instrument_token, ltp, bid, ask)
        if fired:
            self._fire(instrument_token, fired, started)

    def _fire(self, instrument_token: int, fired: tuple[Fired, ...], started: float) -> None:
        for leg in fired:
            if leg.trigger.leg_specs:  # v2: a time leg of it leaves the time book too
                self.timebook.remove(leg.trigger.id)
            self._spawn(self._execute(leg, started))
        if not self.book.holds(instrument_token):
            self._feed.unsubscribe((instrument_token,))
        self.stats.triggers_fired += len(fired)
        self.stats.record_evaluate(time.perf_counter() - started)

    async def run_rehearsals(self) -> None:
        """The rehearsal loop (the supervisor's, with `rehearse_every` set): the firing
        path run on a probe while ticks flow, so that a real fire finds it in the CPU's
        caches (issue 12: run cold, between fires, it takes five to ten times as long).

        The same calls as a fire from the book on (`TriggerBook.on_tick` firing and
        removing a leg, the order task created as `_spawn` creates it, `holds`), on a
        book of its own holding two triggers on an instrument no broker numbers; the
        task it starts does nothing. The engine's book, tasks and counters are not
        touched. Without ticks for `REHEARSAL_QUIET_S`, nothing can fire: none is run.
        """
        probe, tasks = TriggerBook(), set[asyncio.Task[None]]()
        probe.add(_REHEARSAL_REST)
        loop = asyncio.get_running_loop()
        every = self._config.rehearse_every
        seen, ticked = self.stats.ticks_processed, -math.inf
        wait = every
        while True:
            await asyncio.sleep(wait)
            if self.stats.ticks_processed != seen:
                seen, ticked = self.stats.ticks_processed, loop.time()
            # Frames come every few milliseconds while the market moves: only a feed
            # quiet for longer is looked at less often (its first fire runs cold).
            flowing = loop.time() - ticked < REHEARSAL_QUIET_S
            wait = every if flowing else max(every, REHEARSAL_QUIET_S)
            if not flowing or self._state is not EngineState.RUNNING:
                continue
            started = time.perf_counter()
            probe.add(_REHEARSAL)
            for leg in probe.on_tick(_REHEARSAL.instrument_token, _REHEARSAL.trigger_price_1):
                task = loop.create_task(_rehearsed(leg, started))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self.book.holds(_REHEARSAL.instrument_token)
            self.rehearsals += 1

    def _paused(self, account: str | None) -> bool:
        """Whether `account`'s orders may not go now: a linked account that is not live, or
        beside linked accounts the default one without a valid session (or whose book a
        read had to skip)."""
        executor = self._executor
        if not isinstance(executor, AccountExecutors):
            return False
        if account is None:
            return bool(executor.linked) and (not self.session.valid or self._default_unread)
        return account not in executor.live

    @property
    def _shares_firing(self) -> bool:
        """Linked accounts are here: one account's lapse pauses its triggers alone, the
        default account's too (docs/accounts.md). Without them, the default account's
        lapse holds all firing, as it always has."""
        executor = self._executor
        return isinstance(executor, AccountExecutors) and bool(executor.linked)

    @property
    def _readable(self) -> bool:
        """Some account's order book can be read: the default's session is valid, or
        linked accounts are here (their books are read, the default's made up later)."""
        return self.session.valid or self._shares_firing

    def _default_valid(self) -> None:
        """The default account's session is valid again: beside linked accounts, its
        book is read if a read skipped it, then its parked triggers go back."""
        if self._state is EngineState.RUNNING and self._shares_firing:
            self._spawn(self._default_renewed())

    async def _default_renewed(self) -> None:
        executor = self._executor
        if not isinstance(executor, AccountExecutors):
            return
        if self._default_unread:
            try:
                orders = await executor.default.orders()
                settled = await self._source.reconcile(
                    orders, executor.tag, skip=frozenset(self._in_flight)
                )
            except BrokerError as error:
                if error.kind is ErrorKind.AUTH:
                    self.session.expired(error.message)
                log.warning("order_book_unreadable", account=DEFAULT_ACCOUNT, error=str(error))
                return
            except Exception:  # the store failed: paused until the session is renewed again
                log.exception("account_reconcile_failed", account=DEFAULT_ACCOUNT)
                return
            for item in settled:
                self.stats.reconciled += 1
                await self.refresh(item.trigger_id, checked=True)
            self._default_unread = False
        parked = self._parked.pop(DEFAULT_ACCOUNT, set())
        log.info("account_live", account=DEFAULT_ACCOUNT, parked=len(parked))
        for trigger_id in parked:
            await self.refresh(trigger_id)

    def paused_triggers(self, account: str) -> frozenset[TriggerId]:
        """The triggers of `account` kept out of the book while it is not live."""
        return frozenset(self._parked.get(account, ()))

    def _park(self, fired: Fired) -> None:
        """A linked account's trigger fired while that account is not live: out of the
        book (it fired), still `active` in the store (nothing claimed) until it is."""
        account = fired.trigger.account or DEFAULT_ACCOUNT
        self._parked.setdefault(account, set()).add(fired.trigger.id)
        log.warning("account_paused", account=account, trigger_id=fired.trigger.id)

    def _expire(self, account: str | None, reason: str) -> None:
        """An account's session was refused: a linked account's pauses only its triggers."""
        executor = self._executor
        if not (isinstance(executor, AccountExecutors) and executor.expire(account, reason)):
            self.session.expired(reason)

    def remove_account(self, account: str) -> Linked | None:
        """A linked account leaves the engine (unlinked): no order goes through it from
        now on, and none of its triggers is kept parked. Its parts, or None."""
        executor = self._executor
        if not isinstance(executor, AccountExecutors):
            return None
        self._parked.pop(account, None)
        removed = executor.remove(account)
        if not executor.linked:  # the default account alone again: held as it always was
            if self._default_unread:
                self._default_unread = False
                self._hold(rebuild=False)  # its book read (after its login) before any fire
            for trigger_id in self._parked.pop(DEFAULT_ACCOUNT, set()):
                self._spawn(self.refresh(trigger_id))
        return removed

    async def account_renewed(self, account: str) -> None:
        """A linked account's new session: read its order book (a claim lost with the
        database may have placed an order there), then put its triggers back."""
        executor = self._executor
        if not isinstance(executor, AccountExecutors):
            return
        try:
            orders = await executor.orders_of(account)
            settled = await self._source.reconcile(
                orders, executor.tag, skip=frozenset(self._in_flight)
            )
        except BrokerError as error:
            if error.kind is ErrorKind.AUTH:
                executor.expire(account, error.message)
            log.warning("account_order_book_unreadable", account=account, error=str(error))
            return
        except Exception:  # the store failed: the account stays paused until a new login
            log.exception("account_reconcile_failed", account=account)
            return
        for item in settled:
            self.stats.reconciled += 1
            await self.refresh(item.trigger_id, checked=True)
        if account not in executor.linked:  # unlinked while its book was read
            return
        executor.live.add(account)
        log.info("account_live", account=account, settled=len(settled))
        for trigger_id in self._parked.pop(account, set()):
            await self.refresh(trigger_id)

    async def _execute(self, fired: Fired, started: float | None) -> None:
        if self._paused(fired.trigger.account):
            self._park(fired)
            return
        self._in_flight.add(fired.trigger.id)
        # The fire is told (its line, its notice) with its first outcome, once the broker
        # has answered, or when the task ends without one: never between the tick and
        # the order request, which telling would delay (docs/notifications.md).
        self._fired_at[fired.trigger.id] = (
            time.perf_counter() if started is None else started,
            fired.trigger.user_id,
        )
        self._untold[fired.trigger.id] = fired
        try:
            await self._execute_leg(fired, started)
        finally:
            self._in_flight.discard(fired.trigger.id)
            self._fired_at.pop(fired.trigger.id, None)
            self._tell_fire(fired.trigger.id)
            if self.events.listening:
                self.events.changed(fired.trigger.id, fired.trigger.user_id)

    async def _execute_leg(self, fired: Fired, started: float | None) -> None:
        def sending() -> None:
            if started is not None:  # a tick's fire; a time or gap fire has no tick
                self.stats.record_tick_to_order(time.perf_counter() - started)

        try:
            outcome = await self._executor.execute(fired, on_send=sending)
        except AuthExpired as error:
            self._expire(fired.trigger.account, str(error))
            await self.refresh(fired.trigger.id, settled=True)
            return
        except Exception:
            # A store or broker failure outside the protocol's known errors: the
            # trigger stays as the store last recorded it (`triggered` if it was
            # claimed), and recovery settles it by tag.
            self.stats.unresolved += 1
            log.exception("order_task_failed", trigger_id=fired.trigger.id)
            await self._claim_rolled_back(fired.trigger.id)
            return
        if outcome is Outcome.PLACED:
            self.stats.triggered_orders += 1
        elif outcome is Outcome.FAILED:
            self.stats.failed_orders += 1
        elif outcome is Outcome.UNRESOLVED:
            self.stats.unresolved += 1
        elif outcome is Outcome.NOT_CLAIMED:
            # An edit may have won the race: the book takes the row as it is now.
            self.stats.lost_claims += 1
            await self.refresh(fired.trigger.id, settled=True)

    def _settled(
        self, intent: OrderIntent, outcome: Outcome, order_id: str | None, reason: str | None
    ) -> None:
        """An order's final outcome was recorded (the executor's report): say so."""
        self._tell_fire(intent.trigger_id)
        fired = self._fired_at.get(intent.trigger_id)
        latency = None if fired is None else (time.perf_counter() - fired[0]) * 1000
        owner = None if fired is None else fired[1]
        line, notice = story.settled(
            intent, outcome is Outcome.PLACED, order_id, reason, latency, owner or ""
        )
        # A recovered order's owner is not at hand: its line is logged, no notice sent.
        self._tell(line, notice if owner else None, trigger_id=intent.trigger_id)

    def _tell_fire(self, trigger_id: TriggerId) -> None:
        fired = self._untold.pop(trigger_id, None)
        if fired is not None:
            self._tell(*story.fired(fired), trigger_id=trigger_id)

    def _tell(self, line: str, notice: Notice | None, **fields: Any) -> None:
        """The terminal's line, and the notice for whoever wants it."""
        if notice is not None and notice.kind is NoticeKind.FAILED:
            log.warning(line, **fields)
        else:
            log.info(line, **fields)
        if notice is not None and self.notify is not None:
            self.notify(notice)

    async def drain(self) -> None:
        """Wait until every fired leg's order task has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- keeping the book equal to the store -------------------------------------------

    async def arm(self, trigger: Trigger) -> None:
        """A trigger just created, as its committed row holds it: into the book without
        reading it back (its id is known to nobody else yet); later changes `refresh`.

        Held firing holds it too (`on_ltp` evaluates nothing while reconciling); a
        trigger whose order task is running is never put back; during a rebuild of
        the book it is read again from the store once the new book is in place.
        """
        if self._touched is not None:
            self._touched.add(trigger.id)
        if self._state is not EngineState.RUNNING or trigger.status is not Status.ACTIVE:
            return
        if trigger.id in self._in_flight or not self._mine(trigger):
            return
        self._take(trigger.id)
        self._put(trigger)
        if self.events.listening:
            self.events.changed(trigger.id, trigger.user_id)

    def trail_state(self, trigger_id: TriggerId, leg: Leg) -> TrailState | None:
        """Where a trailing leg's stop stands in the book now; None if not held there."""
        return self.book.trail_state(trigger_id, leg)

    def armed(self, trigger_id: TriggerId) -> bool:
        """Whether `trigger_id` is in the book now."""
        return trigger_id in self.book

    async def refresh(
        self, trigger_id: TriggerId, *, settled: bool = False, checked: bool = False
    ) -> None:
        """Put the book in step with the stored row of `trigger_id`.

        A trigger that fired while its row was being read has an order task
        running: the `active` row read before its claim is stale, and putting
        it back would fire it again (a second, refused claim). Its own task
        refreshes it with `settled` once the claim is decided.
        """
        if (
            not checked
            and self._state is EngineState.RUNNING
            and self.book.get(trigger_id) is None
            and may_be_exit(trigger_id)
        ):
            # A bracket's exit new to this engine (its id, so its tags, derived from the
            # bracket): if lost commits erased an exit already placed, the one armed again
            # carries that order's tags, and the start-up reconciliation ran before it
            # existed. The order book is read first, whichever path arms it (the fills'
            # sweep or the change feed), one at a time, so it is settled as placed.
            async with self._exit_check:
                await self.reconcile()
        current = await self._source.active(trigger_id)
        if self._touched is not None:
            self._touched.add(trigger_id)
        if self._state is not EngineState.RUNNING:
            return
        if current is not None and not settled and trigger_id in self._in_flight:
            current = None
        if current is not None and not self._mine(current):
            current = None  # a cluster node: another node's partition
        for refreshed in self._gaining.values():
            refreshed.add(trigger_id)
        armed = self.book.get(trigger_id)
        old = self._take(trigger_id)
        if current is not None:
            # The same row read again (the change feed echoes every write) is not armed anew.
            self._put(current, rearmed=armed == current)
        if old is not None and not self.book.count_for(old.watched):
            self._feed.unsubscribe((old.watched,))
        owner = current or old
        if self.events.listening and owner is not None:
            self.events.changed(trigger_id, owner.user_id)

    async def resync(self) -> None:
        """Rebuild the book from the store's active set after a reconnection (the change
        feed's), reconciled with the broker's order book first, firing held meanwhile.

        A lost LISTEN connection may mean the server restarted and lost claims
        that did not wait for the disk: their rows read `active` again. If the
        book cannot be read, the store's active set is loaded anyway and firing
        stays held until the read succeeds.
        """
        self.holding = True
        reconciled = self._readable and await self._reconcile_safely()
        await self._rebuild_book()
        if reconciled and (self._reconciling is None or self._reconciling.done()):
            self.holding = False
        elif not reconciled:
            self._hold(rebuild=False)

    async def _rebuild_book(self) -> None:
        """Rebuild the book from the store's active set.

        A trigger whose order task is still running stays out: if its claim was
        lost with the database its row reads `active`, yet its order is on its way.
        """
        touched: set[TriggerId] = set()
        self._touched = touched
        # A cluster node's partitions as the load reads them: one lost or gained while it
        # runs is put right before the new book is swapped in (below).
        wanted = None if self._held is None else frozenset(self._held)
        try:
            book, timebook, dormant, _ = await self._load()
        finally:
            self._touched = None
        carried = self._held_apart(wanted, book, timebook, dormant)
        gone = self.book.instruments() - book.instruments()
        # Trailing stops: where this process last saw them, newer than any write.
        self.trails.capture_all(self.book)
        self.trails.resume_all(book)
        self.book, self.timebook, self._dormant = book, timebook, dormant
        for trigger in carried:
            self._put(trigger)
        self._timer_wake.set()
        self._feed.subscribe(book.instruments())
        self._feed.unsubscribe(gone)
        # Created or changed while the store was read: the read may have missed it.
        for trigger_id in touched - self._in_flight:
            await self.refresh(trigger_id)

    def _held_apart(
        self, wanted: frozenset[int] | None, book: TriggerBook, timebook: TimeBook, dormant: Dormant
    ) -> list[Trigger]:
        """A cluster node's partitions moved while a rebuild read `wanted`: the new books
        lose the triggers of a partition lost meanwhile (its new owner has them; kept,
        they would sit here for ever, their claims refused), and the triggers a gain
        armed meanwhile in the old book (a partition not in `wanted`) are returned, to
        be put in the new one (else no node would hold them)."""
        if wanted is None or self._held is None:
            return []
        held = self._held
        for trigger in [*book, *dormant]:
            if self._partition(trigger) not in held:
                book.remove(trigger.id)
                timebook.remove(trigger.id)
                dormant.remove(trigger.id)
        gained = held - wanted
        if not gained:
            return []
        return [
            trigger
            for trigger in [*self.book, *self._dormant]
            if self._partition(trigger) in gained
            and trigger.id not in book
            and trigger.id not in dormant
        ]

    async def _load(
        self, partitions: Collection[int] | None = None
    ) -> tuple[TriggerBook, TimeBook, Dormant, int]:
        """New books of the store's active set (price, time, not yet armed), and how many.

        Each instrument's legs are sorted once, after the last batch
        (`BookBuilder`); the loop runs between batches (each awaits the store)
        and between every `LOAD_STEP_LEGS` legs sorted, so health checks and
        requests are answered throughout a million-trigger load. A trigger whose
        order task is still running stays out (see `_rebuild_book`). A cluster node
        loads the partitions it holds (or `partitions`), nothing else.
        """
        builder = BookBuilder()
        timebook, dormant = TimeBook(), Dormant()
        now = self._clock()
        loaded = 0
        async for batch in self._batches(partitions):
            if self._in_flight:
                batch = [trigger for trigger in batch if trigger.id not in self._in_flight]
            kept = []
            for trigger in batch:
                if trigger.not_before is not None and trigger.not_before > now:
                    dormant.add(trigger)
                    continue
                kept.append(trigger)
                if trigger.leg_specs and _timed(trigger):
                    timebook.add(trigger)
            loaded += builder.add_many(kept) + len(batch) - len(kept)
        sorted_legs = 0
        for legs in builder.steps():
            sorted_legs += legs
            if sorted_legs >= LOAD_STEP_LEGS:
                sorted_legs = 0
                await asyncio.sleep(0)
        book = builder.build()
        book.depth = self._config.depth
        return book, timebook, dormant, loaded

    async def _batches(
        self, partitions: Collection[int] | None = None
    ) -> AsyncIterator[list[Trigger]]:
        """The store's active triggers; a cluster node's: only those of `partitions`
        (default: every partition it holds)."""
        if self._held is None:
            async for batch in self._source.active_batches():
                yield batch
            return
        wanted = frozenset(self._held if partitions is None else partitions)
        if not wanted:
            return
        async for batch in self._source.active_batches(partitions=wanted):
            # Rows stored with no partition (another tool's insert) come with every load.
            yield [trigger for trigger in batch if self._partition(trigger) in wanted]

    # --- a cluster node's partitions (docs/cluster.md) ---------------------------------

    def _partition(self, trigger: Trigger) -> int:
        assert self._partitions is not None
        return partition_of(trigger.watched, self._partitions)

    def _mine(self, trigger: Trigger) -> bool:
        """Whether this engine holds `trigger`: always, unless it is a cluster node."""
        return self._held is None or self._partition(trigger) in self._held

    @property
    def partitions_held(self) -> frozenset[int] | None:
        """A cluster node's partitions (loaded or loading); None for one engine."""
        return None if self._held is None else frozenset(self._held)

    def partition_gained(self, partition: int, token: int) -> None:
        """The lease keeper's callback (never blocks): load the partition's triggers.

        The change feed listens already (the supervisor starts it before the engine),
        so an edit committed during the load is not missed: the ids refreshed while it
        runs are read again after it. Each loaded trigger is then evaluated at once
        against the last price this node's feed gave for its instrument, if any; the
        others get the snapshot tick the feed receives on subscribing, so a crossing
        while the partition had no owner fires late rather than never."""
        if self._held is None or partition in self._held:
            return
        self._held.add(partition)
        self._spawn(self._gain(partition, token))

    def partition_lost(self, partition: int, token: int) -> None:
        """The lease keeper's callback (never blocks): drop the partition's triggers now.
        Claims there stop at once anyway: the store asks the keeper for a valid token."""
        if self._held is None or partition not in self._held:
            return
        self._held.discard(partition)
        gone = [t for t in [*self.book, *self._dormant] if self._partition(t) == partition]
        for trigger in gone:
            self._take(trigger.id)
        watched = {trigger.watched for trigger in gone if _priced(trigger)}
        self._feed.unsubscribe([i for i in watched if not self.book.holds(i)])
        for instrument in watched:
            self.last_ltp.pop(instrument, None)  # not watched now: soon stale
        log.info("partition_dropped", partition=partition, lease=token, triggers=len(gone))

    async def _gain(self, partition: int, token: int) -> None:
        await self._started.wait()  # start()'s own load may have missed it
        if not self._running():
            return
        started = time.perf_counter()
        touched: set[TriggerId] = set()
        self._gaining[id(touched)] = touched
        loaded: list[Trigger] = []
        try:
            async for batch in self._batches((partition,)):
                loaded.extend(batch)
        except Exception:
            # The store is away: given back, so the lease's next gain (or the rebuild
            # of the book after the reconnection, which loads every held partition)
            # loads it.
            log.exception("partition_load_failed", partition=partition)
            if self._held is not None:
                self._held.discard(partition)
            return
        finally:
            del self._gaining[id(touched)]
        if self._held is None or partition not in self._held or not self._running():
            return  # lost (or stopped) while it loaded
        watched = await self._arm_gained(loaded, touched)
        evaluated = self._evaluate_now(watched)
        log.info(
            "partition_loaded",
            partition=partition,
            lease=token,
            triggers=len(loaded),
            instruments=len(watched),
            evaluated=evaluated,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _arm_gained(self, loaded: list[Trigger], touched: set[TriggerId]) -> set[int]:
        """Arm a gained partition's triggers; the instruments their price legs watch."""
        watched: set[int] = set()
        for trigger in loaded:
            if trigger.id in self._in_flight or trigger.id in touched:
                continue  # an order task runs, or a refresh read it since
            if trigger.id in self.book or trigger.id in self._dormant:
                continue
            self._put(trigger)
            if _priced(trigger):
                watched.add(trigger.watched)
        for trigger_id in touched - self._in_flight:
            await self.refresh(trigger_id)
        return watched

    def _evaluate_now(self, instruments: Collection[int]) -> int:
        """Evaluate the book of each instrument at the last price the feed gave for it."""
        evaluated = 0
        for instrument in instruments:
            ltp = self.last_ltp.get(instrument)
            if ltp is None or not self._can_fire() or not self.book.holds(instrument):
                continue
            evaluated += 1
            at = time.perf_counter()
            fired = self.book.on_tick(instrument, ltp)
            if fired:
                self._fire(instrument, fired, at)
        return evaluated

    def _running(self) -> bool:
        return self._state is EngineState.RUNNING

    def _new_book(self) -> TriggerBook:
        book = TriggerBook()
        book.depth = self._config.depth
        return book

    # --- trailing stops -------------------------------------------------------------------

    async def _load_trails(self) -> None:
        """At start-up: every trailing leg resumes from its last written stop."""
        try:
            await self.trails.load()
        except Exception:  # the store is away: the stops start afresh (and say so)
            log.exception("trail_states_unreadable")
        self.trails.resume_all(self.book)

    async def flush_trails(self) -> int:
        """Write the trailing stops that moved since the last write; how many."""
        return await self.trails.flush(self.book, self._clock())

    async def run_trails(self) -> None:
        """The trail loop (the supervisor's): `flush_trails` every HMT_TRAIL_FLUSH_MS."""
        interval = self._config.trail_flush.total_seconds()
        while True:
            await asyncio.sleep(interval)
            if self._state is not EngineState.RUNNING:
                continue
            try:
                await self.flush_trails()
            except Exception:  # the store is away: the next round writes them
                log.exception("trail_flush_failed")

    # --- the books: price legs, time legs, not yet armed ---------------------------------

    def _put(self, trigger: Trigger, *, rearmed: bool = False) -> None:
        """Arm an active trigger: its price legs in the book, its time legs in the time
        book; one whose `not_before` is ahead waits, in neither, for its timer.
        `rearmed`: it was in the book just before, unchanged (not armed anew)."""
        if trigger.not_before is not None and trigger.not_before > self._clock():
            self._dormant.add(trigger)
            self._timer_wake.set()
            return
        self.book.add(trigger)
        if trigger.leg_specs:
            self.trails.resume(self.book, trigger)
        if trigger.leg_specs and _timed(trigger):
            self.timebook.add(trigger)
            self._timer_wake.set()
        if not _priced(trigger):
            return
        token = trigger.watched
        self._feed.subscribe((token,))
        spot = self._blind.get(token)
        if spot is not None:
            if not rearmed:
                spot.armed_during.add(trigger.id)
        elif token not in self.ranges.values and self._reads_quotes:
            self._seed.add(token)

    def _take(self, trigger_id: TriggerId) -> Trigger | None:
        """Disarm: out of both books (and the not-yet-armed); what was there, if anything.
        A trailing leg's stop is remembered: put back unchanged, it resumes from there."""
        held = self.book.get(trigger_id)
        if held is not None and held.leg_specs:
            self.trails.capture(self.book, held)
        old = self.book.remove(trigger_id)
        self.timebook.remove(trigger_id)
        dormant = self._dormant.remove(trigger_id)
        return old if old is not None else dormant

    @property
    def conditions(self) -> bool:
        """Whether v2's conditions run here (time legs, not_before, missed touches): they
        need the store's side of them."""
        return self._conditions is not None

    def _can_fire(self) -> bool:
        return (
            self._state is EngineState.RUNNING
            and not self.holding
            and (self.session.valid or self._shares_firing)
        )

    @property
    def _reads_quotes(self) -> bool:
        return (
            self._conditions is not None
            and self._quotes is not None
            and not self._config.ranges_from_ticks
        )

    # --- time legs and not_before -------------------------------------------------------

    async def run_timers(self) -> None:
        """The timer loop (the supervisor's): arm triggers whose `not_before` has come, and
        fire time legs when due. Sleeps until the earlier of the next of each, at most
        `TIMER_POLL_S`; an earlier time added wakes it."""
        while True:
            self._timer_wake.clear()
            now = self._clock()
            if self._state is EngineState.RUNNING:
                for trigger_id in self._dormant.due(now):
                    self._spawn(self.refresh(trigger_id))  # re-read: it may have changed
                if self._can_fire():
                    self._fire_due(now)
                    if self._blind and self._config.ranges_from_ticks:
                        self._recheck()
            wait = TIMER_POLL_S
            for at in (self.timebook.next_at(), self._dormant.next_at()):
                if at is not None:
                    wait = min(wait, max((at - now).total_seconds(), 0.0))
            await woken(self._timer_wake, wait)

    def _fire_due(self, now: datetime) -> None:
        """Fire every time leg due at `now`, or expire its trigger when it is too late."""
        for fired in self.timebook.due(now):
            trigger = fired.trigger
            self.book.remove(trigger.id)  # an oco's price leg goes with it
            if _priced(trigger) and not self.book.holds(trigger.watched):
                self._feed.unsubscribe((trigger.watched,))
            at = trigger.fire_at(fired.leg)
            late = now - at if at is not None else timedelta(0)
            if late > self._config.time_grace:
                self._in_flight.add(trigger.id)
                self._spawn(self._expire_late(fired, late))
                continue
            self._in_flight.add(trigger.id)  # before the task starts: no refresh re-arms it
            self.stats.triggers_fired += 1
            self._spawn(self._execute(fired, None))

    async def _expire_late(self, fired: Fired, late: timedelta) -> None:
        trigger, at = fired.trigger, fired.trigger.fire_at(fired.leg)
        reason = (
            f"leg {int(fired.leg)}'s time {at.isoformat() if at else '?'} passed "
            f"{late.total_seconds():.0f} s before the engine could fire it (grace "
            f"{self._config.time_grace.total_seconds():.0f} s, HMT_TIME_GRACE_S): not fired"
        )
        try:
            if self._conditions is not None:
                await self._conditions.expire(trigger.id, reason)
            log.warning("time_leg_too_late", trigger_id=trigger.id, reason=reason)
        except Exception:
            log.exception("expire_failed", trigger_id=trigger.id)
        finally:
            self._in_flight.discard(trigger.id)
            await self.refresh(trigger.id)  # still active (the write failed): armed again

    # --- missed touches -------------------------------------------------------------------

    def feed_lost(self, kind: str, reason: str) -> None:
        """The feed went blind (a dropped or stalled ticker connection): every watched
        instrument's range now is what the first look after it is compared with."""
        if self._state is not EngineState.RUNNING or self._conditions is None:
            return
        now = self._clock()
        for token in self.book.instruments():
            if token in self._blind:
                continue  # blind already: the earlier range is the one to compare with
            before = self.ranges.get(token)
            if before is not None:  # no range yet: nothing to compare with
                self._blind[token] = BlindSpot(before, kind, now, reason)
                self._note_stops(token)
        log.info("feed_blind", kind=kind, reason=reason, instruments=len(self._blind))

    def on_range(self, instrument_token: int, high: int, low: int) -> None:
        """A quote/full tick's day high and low (after its LTP went through `on_ltp`)."""
        self.ranges.widen(instrument_token, high, low)
        if self._blind and instrument_token in self._blind:
            self._resolve_gap(instrument_token)

    async def run_quotes(self) -> None:
        """LTP mode's loop (the supervisor's): once the feed is back, read the day's OHLC of
        every instrument that was blind (and of each newly watched one, its baseline)
        from the quote API, at most `QUOTE_BATCH` a request and one request a second."""
        quotes = self._quotes
        if quotes is None or not self._reads_quotes:
            return
        while True:
            await asyncio.sleep(QUOTE_INTERVAL_S)
            if not self._can_fire() or not self._feed.connected:
                continue
            if not self._blind and not self._seed:
                continue
            watched = self.book.instruments()
            for token in [token for token in self._blind if token not in watched]:
                del self._blind[token]  # no longer watched: nothing to compare for
                self._blind_stops.pop(token, None)
            self._seed &= watched
            wanted = [*self._blind, *(token for token in self._seed if token not in self._blind)]
            if not wanted:
                continue
            batch = wanted[:QUOTE_BATCH]
            try:
                ranges = await quotes.day_ranges(batch)
            except BrokerError as error:
                if error.kind is ErrorKind.AUTH:
                    self.session.expired(error.message)
                log.warning("quote_unavailable", error=str(error), instruments=len(batch))
                continue
            for token in batch:
                self._seed.discard(token)
                found = ranges.get(token)
                if found is not None:
                    self.ranges.widen(token, *found)
                if token in self._blind:
                    self._resolve_gap(token)

    def _recheck(self) -> None:
        """Quote/full mode: blind instruments whose first tick came while firing was held
        (a start-up's reconciliation) are compared now; the others wait for theirs."""
        for token, spot in list(self._blind.items()):
            if self.ranges.get(token) != spot.before:
                self._resolve_gap(token)

    def _resolve_gap(self, token: int) -> None:
        """The first look at `token` after a blind spot: the legs whose price its range
        moved past meanwhile follow their trigger's `on_gap`."""
        if not self._can_fire():
            return  # compared once firing resumes (the range keeps growing meanwhile)
        spot = self._blind.pop(token)
        stops = self._blind_stops.pop(token, {})
        after = self.ranges.get(token)
        if after is None or after == spot.before:
            return
        now = self._clock()
        seen: set[TriggerId] = set()
        crossed: list[tuple[Trigger, Leg, int | None]] = [
            (t, leg, None) for t, leg in self.book.crossed(token, spot.before, after)
        ]
        for (trigger_id, leg), was in stops.items():
            held = self.book.get(trigger_id)
            trail = None if held is None else held.trail(leg)
            if held is None or trail is None:
                continue
            if touched(trail, was, spot.before, after) is not None:
                crossed.append((held, leg, was))
        for trigger, leg, stop in sorted(crossed, key=_leg_order):
            if trigger.id in spot.armed_during:
                continue
            payload = _missed(trigger, leg, spot, after, now, stop)
            if trigger.on_gap is OnGap.SKIP:
                log.info("missed_touch", trigger_id=trigger.id, leg=int(leg), action="skip")
                if self.notify is not None:
                    self.notify(story.skipped(trigger, leg))
                self._spawn(self._note(trigger.id, payload))
                continue
            if trigger.id in seen:
                continue  # an oco whose both legs were crossed: its first leg fires
            seen.add(trigger.id)
            self._take(trigger.id)
            rises = direction(trigger, leg) is Direction.AT_OR_ABOVE
            fired = Fired(trigger, leg, after.high if rises else after.low, Cause.GAP)
            log.warning("missed_touch", trigger_id=trigger.id, leg=int(leg), action="fire")
            self._in_flight.add(trigger.id)
            self.stats.triggers_fired += 1
            self._spawn(self._execute_gap(fired, payload))
        if not self.book.holds(token):
            self._feed.unsubscribe((token,))

    def _note_stops(self, token: int) -> None:
        """The trailing stops of `token` as a blind spot begins: what its low (a SELL stop's)
        is compared with afterwards, whatever later ticks do to them."""
        stops = {
            (trigger.id, leg): state.stop
            for trigger, leg, state in self.book.trail_states(token)
            if state.stop is not None
        }
        if stops:
            self._blind_stops[token] = stops
        else:
            self._blind_stops.pop(token, None)

    async def _execute_gap(self, fired: Fired, payload: dict[str, Any]) -> None:
        await self._note(fired.trigger.id, payload)  # first: the history says why
        await self._execute(fired, None)

    async def _note(self, trigger_id: TriggerId, payload: dict[str, Any]) -> None:
        if self._conditions is None:
            return
        try:
            await self._conditions.note(trigger_id, EventKind.MISSED_TOUCH, payload)
        except Exception:
            log.exception("missed_touch_unrecorded", trigger_id=trigger_id, payload=payload)

    async def save_ranges(self) -> None:
        """Save the day ranges changed since the last save (the supervisor: every few
        seconds; `stop`: at once). A new day starts with none."""
        if self._conditions is None:
            return
        day = ist_day(self._clock())
        if self.ranges.day is not None and self.ranges.day != day:
            self._blind.clear()  # yesterday's ranges compare with nothing today
            self._blind_stops.clear()
        changed = {} if self.ranges.roll(day) else self.ranges.take_changed()
        if changed:
            try:
                await self._conditions.save_day_ranges(self._config.broker, day, changed)
            except Exception:
                self.ranges.changed.update(changed)  # kept for the next round
                raise

    async def _load_ranges(self) -> None:
        """At start-up: the day ranges saved before, and the restart as a blind spot."""
        if self._conditions is None:
            return
        now = self._clock()
        day = ist_day(now)
        try:
            stored = await self._conditions.day_ranges(self._config.broker, day)
            # Earlier days' ranges say nothing about today: the table keeps only today's.
            await self._conditions.forget_day_ranges(self._config.broker, day)
        except Exception:
            log.exception("day_ranges_unreadable")
            stored = {}
        self.ranges.load(day, stored)
        for token in self.book.instruments():
            before = self.ranges.get(token)
            if before is not None:
                self._blind[token] = BlindSpot(before, "restart", now, "the engine restarted")
                self._note_stops(token)
            elif self._reads_quotes:
                self._seed.add(token)

    @property
    def uptime(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at


async def _rehearsed(fired: Fired, started: float) -> None:
    """A rehearsal's order task: started like a fire's (`_execute`), it does nothing."""


def _timed(trigger: Trigger) -> bool:
    """Whether any leg of `trigger` is a time condition."""
    return any(trigger.fire_at(leg) is not None for leg in trigger.legs)


def _priced(trigger: Trigger) -> bool:
    """Whether any leg of `trigger` watches a price."""
    return not trigger.leg_specs or any(trigger.fire_at(leg) is None for leg in trigger.legs)


def _leg_order(item: tuple[Trigger, Leg, int | None]) -> tuple[str, int]:
    return item[0].id, int(item[1])


def _missed(
    trigger: Trigger,
    leg: Leg,
    spot: BlindSpot,
    after: DayRange,
    now: datetime,
    stop: int | None = None,
) -> dict[str, Any]:
    """A `missed_touch` event's payload: the leg, the policy, the ranges, the blind spot.
    A trailing leg's threshold is its stop when the blind spot began (`trailing` true)."""

    def rupees(units: int) -> str:  # nested values are stored as given: strings
        return str(to_decimal(units, trigger.price_divisor))

    extra = {} if stop is None else {"trailing": True}
    return {
        **extra,
        "leg": int(leg),
        "on_gap": trigger.on_gap.value,
        "threshold": rupees(trigger.threshold(leg) if stop is None else stop),
        "direction": direction(trigger, leg).value,
        "before": {"high": rupees(spot.before.high), "low": rupees(spot.before.low)},
        "after": {"high": rupees(after.high), "low": rupees(after.low)},
        "blind": spot.describe(now),
    }
