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
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from hmt.core.book import BookBuilder, TriggerBook
from hmt.core.model import Fired, InFlight
from hmt.core.types import TriggerId
from hmt.engine.events import EventHub
from hmt.engine.executor import AuthExpired, Executor, Outcome
from hmt.engine.ports import Feed, TriggerSource
from hmt.engine.session import BrokerSession
from hmt.engine.stats import EngineStats

log = structlog.get_logger("hmt.engine")

# Legs sorted between two turns of the loop while a load builds the book (about 10 ms).
LOAD_STEP_LEGS = 50_000


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


class Engine:
    """One broker account's triggers, watched and executed."""

    def __init__(
        self,
        *,
        source: TriggerSource,
        feed: Feed,
        executor: Executor,
        clock: Callable[[], datetime],
        config: EngineConfig | None = None,
        session: BrokerSession | None = None,
    ) -> None:
        self.book = TriggerBook()
        self.stats = EngineStats()
        self._state = EngineState.STOPPED
        # Whether the broker takes our orders is the session's to say, not the engine's.
        self.session = session or BrokerSession()
        self._source = source
        self._feed = feed
        self._executor = executor
        self._clock = clock
        self._config = config or EngineConfig()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_at: float | None = None
        self.last_ltp: dict[int, int] = {}  # per instrument, for create-time warnings
        self.events = EventHub()  # live viewers; costs one test per tick when there are none

    # --- lifecycle --------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        """The lifecycle state; `login_required` while running on an invalid broker session."""
        if self._state is EngineState.RUNNING and not self.session.valid:
            return EngineState.LOGIN_REQUIRED
        return self._state

    async def start(self) -> None:
        """The seed's start-up order: kill switch, recover, load, subscribe, connect."""
        if not self._config.enabled:
            self._state = EngineState.DISABLED
            log.warning("engine_disabled", reason="HMT_ENGINE_ENABLED is false")
            return
        if self._state is not EngineState.STOPPED:
            return
        self._state = EngineState.STARTING
        await self.recover()
        for expired in await self._source.expire_due():
            self.book.remove(expired)
        # Built aside and swapped in: in STARTING nothing reads or changes the book.
        self.book, loaded = await self._load()
        self._feed.subscribe(self.book.instruments())
        await self._feed.start()
        self._started_at = time.monotonic()
        self._state = EngineState.RUNNING
        log.info("engine_started", triggers=loaded, instruments=len(self.book.instruments()))

    async def stop(self) -> None:
        """Let in-flight orders finish, then close the feed and forget the book."""
        if self._state in (EngineState.STOPPED, EngineState.DISABLED):
            return
        self._state = EngineState.STOPPED
        await self.drain()
        await self._feed.stop()
        self._feed.unsubscribe(self.book.instruments())
        self.book = TriggerBook()
        self._started_at = None
        log.info("engine_stopped")

    async def recover(self) -> None:
        """Settle, before anything can fire, this engine's claims a crash left `triggered`,
        and every other engine's claim whose lease has expired."""
        leased_at = asyncio.get_running_loop().time()
        for left in await self._source.adopt(own=True):
            await self._settle(left, leased_at)

    async def settle_expired(self) -> int:
        """Settle every claim whose lease has expired: its engine died, or gave up.

        Run periodically (the supervisor's claim sweep, every half lease) by every
        engine, so a claim left by an engine that was SIGKILLed is settled
        within about one lease and a half, whether or not it restarts. Each
        adopted claim is settled in its own task; returns how many were adopted.
        """
        leased_at = asyncio.get_running_loop().time()
        adopted = await self._source.adopt(own=False)
        for left in adopted:
            self._spawn(self._settle_adopted(left, leased_at))
        return len(adopted)

    async def _settle_adopted(self, left: InFlight, leased_at: float) -> None:
        try:
            await self._settle(left, leased_at)
        except AuthExpired as error:
            self.session.expired(str(error))
        except Exception:
            # The row stays `triggered`; its lease runs out and a later sweep tries again.
            self.stats.unresolved += 1
            log.exception("order_task_failed", trigger_id=left.intent.trigger_id)
        finally:
            # Released (an expired session) puts it back in the book; live viewers hear of it.
            await self.refresh(left.intent.trigger_id)

    async def _settle(self, left: InFlight, leased_at: float) -> None:
        """Settle one adopted claim: by tag first; sent again only if it is recent."""
        now = self._clock()
        recent = left.triggered_at is not None and now - left.triggered_at <= (
            self._config.resend_within
        )
        if recent:
            outcome: Outcome | None = await self._executor.settle(
                left.intent, ambiguous=True, leased_at=leased_at
            )
        else:
            outcome = await self._executor.resolve(left.intent, leased_at=leased_at)
        if outcome is None:
            await self._source.give_up(
                left.intent.trigger_id,
                "the engine restarted before the order was confirmed, the broker has "
                "no order with its tag, and the price may have moved since: not sent again",
            )
            outcome = Outcome.FAILED
        log.info("recovered", trigger_id=left.intent.trigger_id, outcome=outcome.value)

    # --- the tick path ------------------------------------------------------------

    def on_ltp(self, instrument_token: int, ltp: int) -> None:
        """Called by the feed for every (token, price); never awaits."""
        self.stats.ticks_processed += 1
        self.last_ltp[instrument_token] = ltp
        if self.events.listening:
            self.events.price(instrument_token, ltp)
        if self._state is not EngineState.RUNNING or not self.session.valid:
            return
        started = time.perf_counter()  # before the book: evaluation is part of the path
        fired = self.book.on_tick(instrument_token, ltp)
        if not fired:
            return
        for leg in fired:
            self._spawn(self._execute(leg, started))
        if not self.book.holds(instrument_token):
            self._feed.unsubscribe((instrument_token,))
        self.stats.triggers_fired += len(fired)
        self.stats.record_evaluate(time.perf_counter() - started)

    async def _execute(self, fired: Fired, started: float) -> None:
        try:
            await self._execute_leg(fired, started)
        finally:
            if self.events.listening:
                self.events.changed(fired.trigger.id, fired.trigger.user_id)

    async def _execute_leg(self, fired: Fired, started: float) -> None:
        def sending() -> None:
            self.stats.record_tick_to_order(time.perf_counter() - started)

        try:
            outcome = await self._executor.execute(fired, on_send=sending)
        except AuthExpired as error:
            self.session.expired(str(error))
            await self.refresh(fired.trigger.id)
            return
        except Exception:
            # A store or broker failure outside the protocol's known errors: the
            # trigger stays as the store last recorded it (`triggered` if it was
            # claimed), and recovery settles it by tag.
            self.stats.unresolved += 1
            log.exception("order_task_failed", trigger_id=fired.trigger.id)
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
            await self.refresh(fired.trigger.id)

    async def drain(self) -> None:
        """Wait until every fired leg's order task has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- keeping the book equal to the store -------------------------------------------

    async def refresh(self, trigger_id: TriggerId) -> None:
        """Put the book in step with the stored row of `trigger_id`."""
        current = await self._source.active(trigger_id)
        if self._state is not EngineState.RUNNING:
            return
        old = self.book.remove(trigger_id)
        if current is not None:
            self.book.add(current)
            self._feed.subscribe((current.instrument_token,))
        if old is not None and not self.book.count_for(old.instrument_token):
            self._feed.unsubscribe((old.instrument_token,))
        owner = current or old
        if self.events.listening and owner is not None:
            self.events.changed(trigger_id, owner.user_id)

    async def resync(self) -> None:
        """Rebuild the book from the store's active set (after a lost change feed)."""
        book, _ = await self._load()
        gone = self.book.instruments() - book.instruments()
        self.book = book
        self._feed.subscribe(book.instruments())
        self._feed.unsubscribe(gone)

    async def _load(self) -> tuple[TriggerBook, int]:
        """A new book of the store's active set, and how many it holds.

        Each instrument's legs are sorted once, after the last batch
        (`BookBuilder`); the loop runs between batches (each awaits the store)
        and between every `LOAD_STEP_LEGS` legs sorted, so health checks and
        requests are answered throughout a million-trigger load.
        """
        builder = BookBuilder()
        loaded = 0
        async for batch in self._source.active_batches():
            loaded += builder.add_many(batch)
        sorted_legs = 0
        for legs in builder.steps():
            sorted_legs += legs
            if sorted_legs >= LOAD_STEP_LEGS:
                sorted_legs = 0
                await asyncio.sleep(0)
        return builder.build(), loaded

    @property
    def uptime(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at
