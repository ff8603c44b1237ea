"""What the engine needs from its adapters: every port, as a small protocol, in one place.

The composition (`hmt.compose`) plugs the adapters in: the Kite ticker as the
`Feed`, Kite's REST API or the paper broker as the `OrderPort`, the store as the
`TriggerSource` and `ClaimStore`, PostgreSQL's LISTEN/NOTIFY as the
`ChangeSource`, Kite's daily instrument dump as the `InstrumentSource`. Nothing in the
engine names an adapter's class.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hmt.core.broker import OrderReport
from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.types import Exchange, InstrumentToken, TriggerId
from hmt.store.changes import Change, Resync

# --- prices in ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The price feed's connection state, as /health and /stats show it."""

    state: str  # the feed's own word for it: "connected", "reconnecting", "token_invalid"...
    connected: bool
    connections: int = 0
    subscribed_tokens: int = 0
    reconnects: int = 0
    bad_frames: Mapping[str, int] = field(default_factory=dict)
    last_frame_age_s: float | None = None  # seconds since the last frame; None before one


class Feed(Protocol):
    """The ticker, as the engine uses it (prices arrive through the callback it was built with)."""

    def subscribe(self, tokens: Iterable[int]) -> None: ...
    def unsubscribe(self, tokens: Iterable[int]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    @property
    def connected(self) -> bool: ...
    def status(self) -> FeedStatus: ...


# --- the store, read ------------------------------------------------------------------


class TriggerSource(Protocol):
    """The store, as the engine reads it."""

    def active_batches(self) -> AsyncIterator[list[Trigger]]: ...
    async def active(self, trigger_id: TriggerId) -> Trigger | None:
        """The trigger if it is active now, else None."""
        ...

    async def in_flight(self) -> list[InFlight]: ...
    async def expire_due(self) -> list[TriggerId]: ...
    async def give_up(self, trigger_id: TriggerId, reason: str) -> None:
        """Fail a trigger left `triggered` without sending anything."""
        ...


class ChangeSource(Protocol):
    """Edits made by anything (psql, another engine, a hosted UI), as the supervisor reads them.

    Iterating yields a `Resync` first and after every reconnect (notifications
    may have been missed: re-read the active set), and a `Change` per changed row.
    """

    def __aiter__(self) -> AsyncIterator[Change | Resync]: ...


# --- orders out -------------------------------------------------------------------------


class OrderPort(Protocol):
    """A broker's order book: Kite's REST API, or the paper broker."""

    async def place(self, intent: OrderIntent) -> str:
        """Send `intent`; the broker's order id, or a classified `BrokerError`."""
        ...

    async def find(self, tag: str) -> list[OrderReport]:
        """Every order in today's book that carries `tag`."""
        ...


class ClaimStore(Protocol):
    """The store's side of the exactly-once protocol (DESIGN section 3).

    Each method is one transaction that changes the trigger's row and appends
    its events together; every one but `claim` is conditional on the trigger
    being `triggered`, so a late writer cannot move a finished trigger. The
    store stamps every change with its own clock.
    `attempt` > 0 says an order request was sent in this step: the store
    records its `order_sent` event in the same transaction, so no extra write
    sits between the claim and the order.
    """

    async def claim(self, fired: Fired) -> bool:
        """`active` -> `triggered`, or False if anything else (an edit, a cancel,
        another engine) got there first."""
        ...

    async def retry(self, trigger_id: TriggerId, attempt: int, reason: str) -> None: ...

    async def placed(self, trigger_id: TriggerId, order_id: str, attempt: int) -> None:
        """`attempt` 0: found in the broker's book by tag rather than answered."""
        ...

    async def failed(self, trigger_id: TriggerId, reason: str, attempt: int) -> None: ...

    async def released(self, trigger_id: TriggerId, reason: str, attempt: int) -> None: ...


# --- the instrument master ---------------------------------------------------------------


class InstrumentSource(Protocol):
    """The broker's instrument master (Kite: the daily `/instruments` dump)."""

    async def fetch(self) -> list[Listing]:
        """Every instrument the broker lists today, or a classified `BrokerError`."""
        ...

    def unlisted(
        self, token: InstrumentToken, exchange: Exchange, tradingsymbol: str
    ) -> tuple[Instrument, list[FieldError]]:
        """What the broker's id rules alone say, for when no master can be had."""
        ...


# --- the broker session -------------------------------------------------------------------


class TokenUser(Protocol):
    """A broker client that authenticates with the session's access token (REST, ticker)."""

    def set_access_token(self, access_token: str) -> None: ...


class SessionVault(Protocol):
    """Where a new access token is kept across restarts (sealed), if anywhere."""

    async def save(self, access_token: str) -> None: ...


class BrokerLogin(Protocol):
    """The broker's login exchange: a one-time request token for an access token."""

    async def __call__(self, request_token: str) -> str: ...


class BrokerRest(Protocol):
    """The broker's REST client beyond orders: its files (the instrument dumps), and closing."""

    async def csv(self, path: str) -> str: ...
    async def aclose(self) -> None: ...
