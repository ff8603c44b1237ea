"""The running hmt as an API on a thread of its own sees it: `Bridge`, a `Facade`.

The API's handlers run on their own event loop (HMT_API_LOOP=thread), so
parsing, validation, JSON and the database round trip of a create never hold
the engine's loop, where ticks are evaluated and orders sent. The bridge
gives them their own database connections (a `Database` made on the API's
loop: an asyncpg or aiosqlite connection belongs to the loop that opened it)
and hands everything that touches the engine's state to the engine's loop
(`EngineLoop.run`), waiting for it there: a change made through the API is
in the engine's book before the response returns. Plain reads (state,
counters, last prices, health) are read across the thread as they are.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from hmt.config import Settings
from hmt.core.book import TriggerBook
from hmt.core.candles import Candle
from hmt.core.instruments import Instrument, Listing
from hmt.core.model import Trigger
from hmt.core.notices import NoticeKind
from hmt.core.trailing import TrailState
from hmt.core.types import Exchange, InstrumentToken, Leg, TriggerId
from hmt.engine.channels import Channels
from hmt.engine.events import EventHub, Subscription
from hmt.engine.health import Health
from hmt.engine.instruments import InstrumentMaster, Resolution
from hmt.engine.runtime import Runtime
from hmt.engine.service import Engine, EngineState
from hmt.engine.stats import EngineStats
from hmt.store.channels import Channel
from hmt.store.db import Database
from hmt.store.linked import LinkedAccount
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore

T = TypeVar("T")


class EngineLoop:
    """The engine's event loop, as seen from another thread's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the engine's loop and wait for it from this one.

        Shielded: a client that hangs up does not cancel a change half-way to
        the book (the write is committed by then; the book must follow it).
        """
        if asyncio.get_running_loop() is self.loop:
            return await work
        done = asyncio.run_coroutine_threadsafe(work, self.loop)
        return await asyncio.shield(asyncio.wrap_future(done))

    def call(self, callback: Any, *args: Any) -> None:
        """Call `callback(*args)` on the engine's loop, soon; returns at once."""
        self.loop.call_soon_threadsafe(callback, *args)


class HubView:
    """The engine's live events for a reader on another loop."""

    def __init__(self, hub: EventHub, link: EngineLoop) -> None:
        self._hub = hub
        self._link = link

    def subscribe(self) -> Subscription:
        subscription = Subscription(
            self._hub,
            reader=asyncio.get_running_loop(),
            leave=lambda s: self._link.call(self._hub.unsubscribe, s),
        )
        self._link.call(self._hub.attach, subscription)  # the hub's set is the engine's
        return subscription


class EngineView:
    """The engine for the API's thread: reads as they are, changes on the engine's loop."""

    def __init__(self, engine: Engine, link: EngineLoop) -> None:
        self._engine = engine
        self._link = link
        self._events = HubView(engine.events, link)

    @property
    def state(self) -> EngineState:
        return self._engine.state

    @property
    def stats(self) -> EngineStats:
        return self._engine.stats

    @property
    def last_ltp(self) -> Mapping[int, int]:
        return self._engine.last_ltp

    @property
    def book(self) -> TriggerBook:
        return self._engine.book

    @property
    def reconciling(self) -> bool:
        return self._engine.reconciling  # a bool read: safe across threads

    @property
    def events(self) -> HubView:
        return self._events

    def trail_state(self, trigger_id: TriggerId, leg: Leg) -> TrailState | None:
        # A read of the book from the API's thread: a few dict and attribute reads, no
        # iteration. A tick or an edit changing it meanwhile yields the state before or
        # after, or (the trigger leaving the book between two reads) nothing live.
        try:
            return self._engine.trail_state(trigger_id, leg)
        except (KeyError, AttributeError):
            return None

    async def arm(self, trigger: Trigger) -> None:
        await self._link.run(self._engine.arm(trigger))

    async def refresh(self, trigger_id: TriggerId) -> None:
        await self._link.run(self._engine.refresh(trigger_id))

    async def start(self) -> None:
        await self._link.run(self._engine.start())

    async def stop(self) -> None:
        await self._link.run(self._engine.stop())


class InstrumentsView:
    """The instrument master: today's copy read from here, a fetch on the engine's loop."""

    def __init__(self, master: InstrumentMaster, link: EngineLoop) -> None:
        self._master = master
        self._link = link

    async def listings(self) -> Sequence[Listing]:
        if self._master.fresh():
            return await self._master.listings()
        return await self._link.run(self._master.listings())

    async def resolve(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> Resolution:
        if self._master.fresh():  # the common case: a dictionary look-up, no hop
            return await self._master.resolve(token, exchange, tradingsymbol)
        return await self._link.run(self._master.resolve(token, exchange, tradingsymbol))


class ChannelsView:
    """The channels, each call run on the engine's loop (their notifier lives there)."""

    def __init__(self, channels: Channels, link: EngineLoop) -> None:
        self._channels = channels
        self._link = link

    async def add(
        self, user_id: str, *, name: str, url: str, kinds: Sequence[NoticeKind]
    ) -> Channel:
        return await self._link.run(self._channels.add(user_id, name=name, url=url, kinds=kinds))

    async def list(self, user_id: str) -> builtins.list[Channel]:
        return await self._link.run(self._channels.list(user_id))

    async def delete(self, user_id: str, channel_id: str) -> bool:
        return await self._link.run(self._channels.delete(user_id, channel_id))

    async def test(self, user_id: str, channel_id: str) -> str | bool | None:
        return await self._link.run(self._channels.test(user_id, channel_id))


class Bridge:
    """A `Facade` over `runtime` for an API on another loop, with its own stores."""

    def __init__(
        self,
        runtime: Runtime,
        link: EngineLoop,
        *,
        db: Database,
        triggers: TriggerStore,
        tokens: TokenStore,
    ) -> None:
        self._runtime = runtime
        self._link = link
        self.settings: Settings = runtime.settings
        self.db = db
        self.triggers = triggers
        self.tokens = tokens
        self.feed = runtime.feed
        self.brokers = runtime.brokers
        self.broker_of = runtime.broker_of  # pure: no hop
        self._engine = EngineView(runtime.engine, link)
        self._instruments = InstrumentsView(runtime.instruments, link)
        self._channels = None if runtime.channels is None else ChannelsView(runtime.channels, link)

    @property
    def channels(self) -> ChannelsView | None:
        return self._channels

    @property
    def engine(self) -> EngineView:
        return self._engine

    @property
    def instruments(self) -> InstrumentsView:
        return self._instruments

    async def start(self) -> None:
        """Nothing: the runtime is started on its own loop by whoever owns it."""

    async def close(self) -> None:
        """Close this side's database connections (the runtime is closed by its owner)."""
        await self.db.dispose()

    def health(self) -> Health:
        return self._runtime.health()

    def stats(self) -> dict[str, Any]:
        return self._runtime.stats()

    async def use_access_token(self, access_token: str) -> bool:
        return await self._link.run(self._runtime.use_access_token(access_token))

    def account_sessions(self) -> dict[str, tuple[str, str]]:
        return self._runtime.account_sessions()  # plain reads of attributes: no hop needed

    async def link_account(self, account: LinkedAccount) -> None:
        await self._link.run(self._runtime.link_account(account))

    async def unlink_account(self, account_id: str) -> bool:
        return await self._link.run(self._runtime.unlink_account(account_id))

    async def use_account_token(self, account_id: str, access_token: str) -> bool:
        return await self._link.run(self._runtime.use_account_token(account_id, access_token))

    async def account_login(self, account_id: str, request_token: str) -> bool:
        return await self._link.run(self._runtime.account_login(account_id, request_token))

    async def kite_login(self, request_token: str) -> bool:
        return await self._link.run(self._runtime.kite_login(request_token))

    async def candles(
        self, instrument: Instrument, interval: str, start: datetime, end: datetime
    ) -> list[Candle]:
        # The broker's HTTP client belongs to the engine's loop.
        return await self._link.run(self._runtime.candles(instrument, interval, start, end))
