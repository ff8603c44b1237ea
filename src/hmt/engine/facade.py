"""What the HTTP API may use of a running hmt, and nothing more.

The API is typed against this protocol, not against the runtime the
composition assembles, so a route cannot reach into the supervisor or a broker
adapter, and a test can serve the API over anything that has these members.
Two things satisfy it: the `Runtime` itself (the API on the engine's event
loop) and `hmt.engine.bridge.Bridge` (the API on a thread of its own, its own
database connections, every engine call handed to the engine's loop).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence, Sized
from datetime import datetime
from typing import Any, Protocol

from hmt.config import Settings
from hmt.core.candles import Candle
from hmt.core.instruments import Instrument, Listing
from hmt.core.model import Trigger
from hmt.core.notices import NoticeKind
from hmt.core.trailing import TrailState
from hmt.core.types import Exchange, InstrumentToken, Leg, TriggerId
from hmt.engine.events import Subscription
from hmt.engine.health import Health
from hmt.engine.instruments import Resolution
from hmt.engine.ports import Feed
from hmt.engine.service import EngineState
from hmt.engine.stats import EngineStats
from hmt.store.channels import Channel
from hmt.store.db import Database
from hmt.store.linked import LinkedAccount
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore


class Events(Protocol):
    """The live events a viewer subscribes to."""

    def subscribe(self) -> Subscription: ...


class EngineApi(Protocol):
    """The engine as the API sees it: its state, its book's updates, start and stop."""

    @property
    def state(self) -> EngineState: ...
    @property
    def stats(self) -> EngineStats: ...
    @property
    def last_ltp(self) -> Mapping[int, int]: ...
    @property
    def events(self) -> Events: ...
    @property
    def book(self) -> Sized: ...
    @property
    def reconciling(self) -> bool:
        """Firing held until the broker's order book is read: stored rows may be behind it."""
        ...

    def trail_state(self, trigger_id: TriggerId, leg: Leg) -> TrailState | None:
        """Where a trailing leg's stop stands in the book now; None if not held there."""
        ...

    async def arm(self, trigger: Trigger) -> None:
        """A trigger just created: in the book when this returns."""
        ...

    async def refresh(self, trigger_id: TriggerId) -> None:
        """The book in step with the stored row when this returns."""
        ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Instruments(Protocol):
    """The broker's instrument master: the checks at create and edit, and the search."""

    async def listings(self) -> Sequence[Listing]: ...
    async def resolve(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> Resolution: ...


class ChannelsApi(Protocol):
    """A user's notification channels (`hmt.engine.channels.Channels`)."""

    async def add(
        self, user_id: str, *, name: str, url: str, kinds: Sequence[NoticeKind]
    ) -> Channel: ...
    async def list(self, user_id: str) -> builtins.list[Channel]: ...
    async def delete(self, user_id: str, channel_id: str) -> bool: ...
    async def test(self, user_id: str, channel_id: str) -> str | bool | None: ...


class Facade(Protocol):
    """A running hmt as the API sees it."""

    settings: Settings
    db: Database  # the counts behind limits and /metrics
    tokens: TokenStore
    triggers: TriggerStore
    feed: Feed  # its status, for /metrics
    # The brokers whose accounts it trades, and the broker an instrument id is of
    # (docs/accounts.md): a trigger's instruments must be its account's broker's.
    brokers: frozenset[str]

    def broker_of(self, token: int, /) -> str: ...

    @property
    def engine(self) -> EngineApi: ...
    @property
    def instruments(self) -> Instruments: ...
    @property
    def channels(self) -> ChannelsApi | None:
        """None without HMT_SECRET_KEY: channel URLs are stored only sealed."""
        ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def health(self) -> Health: ...
    def stats(self) -> dict[str, Any]: ...

    async def use_access_token(self, access_token: str) -> bool:
        """PUT /broker/session: store it (sealed, if configured) and trade with it; stored?"""
        ...

    async def kite_login(self, request_token: str) -> bool:
        """/kite/callback: exchange the request token, then as `use_access_token`."""
        ...

    def account_sessions(self) -> dict[str, tuple[str, str]]:
        """Each account's session state and reason by id (docs/accounts.md)."""
        ...

    async def link_account(self, account: LinkedAccount) -> None:
        """POST /accounts: store it sealed and trade through it."""
        ...

    async def unlink_account(self, account_id: str) -> bool:
        """DELETE /accounts/{id}: out of the engine, then its row deleted; False if unknown
        (`AccountInUse`, `UnlinkRefused`: refused, nothing changed)."""
        ...

    async def use_account_token(self, account_id: str, access_token: str) -> bool:
        """PUT /accounts/{id}/session: False if this engine does not trade the account."""
        ...

    async def account_login(self, account_id: str, request_token: str) -> bool:
        """/kite/callback for a linked account: exchange, then as `use_account_token`."""
        ...

    async def candles(
        self, instrument: Instrument, interval: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """The broker's historical candles (ConfigError: it serves none)."""
        ...
