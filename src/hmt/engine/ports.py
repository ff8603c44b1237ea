"""What the engine needs from its adapters: every port, as a small protocol, in one place.

The composition (`hmt.compose`) plugs the adapters in: the Kite ticker as the
`Feed`, Kite's REST API or the paper broker as the `OrderPort`, the store as the
`TriggerSource` and `ClaimStore`, PostgreSQL's LISTEN/NOTIFY as the
`ChangeSource`, Kite's daily instrument dump as the `InstrumentSource`. Nothing in the
engine names an adapter's class.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from hmt.core.broker import OrderReport
from hmt.core.candles import Candle
from hmt.core.errors import FieldError
from hmt.core.events import EventKind
from hmt.core.instruments import Instrument, Listing
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.types import Exchange, InstrumentToken, Leg, TriggerId
from hmt.store.changes import Change, Resync
from hmt.store.reconciliation import Reconciled, TagOf

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
    ticks: int = 0  # prices received since start
    ticks_by_connection: Mapping[int, int] = field(default_factory=dict)  # by socket index


class Feed(Protocol):
    """The ticker, as the engine uses it (prices arrive through the callback it was built with)."""

    def subscribe(self, tokens: Iterable[int]) -> None: ...
    def unsubscribe(self, tokens: Iterable[int]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    @property
    def connected(self) -> bool: ...
    def status(self) -> FeedStatus: ...


class QuotePort(Protocol):
    """The broker's quotes, for the day's high and low (Kite: GET /quote/ohlc).

    Asked after a blind spot in LTP mode, where ticks carry no day range, and to
    seed an instrument's range when it starts being watched.
    """

    async def day_ranges(self, tokens: Collection[int]) -> dict[int, tuple[int, int]]:
        """(high, low) in wire units of each instrument the broker has today's prices
        for (others are absent), or a classified `BrokerError`."""
        ...


# --- the store, read ------------------------------------------------------------------


class TriggerSource(Protocol):
    """The store, as the engine reads it."""

    def active_batches(
        self, partitions: Collection[int] | None = None
    ) -> AsyncIterator[list[Trigger]]:
        """The active triggers in batches; with `partitions` (a cluster node's), those
        stored in them and any stored with none (the engine keeps its own)."""
        ...

    async def active(self, trigger_id: TriggerId) -> Trigger | None:
        """The trigger if it is active now, else None."""
        ...

    async def adopt(self, *, own: bool, tag_of: TagOf | None = None) -> list[InFlight]:
        """Take over, under a fresh lease, the claims this engine may settle: expired
        ones (any engine's), and with `own` those recorded under this engine's id.
        A basket comes back with its unsettled orders (`InFlight.basket`); `tag_of`
        gives the tag of an order of it never sent."""
        ...

    async def expire_due(self) -> list[TriggerId]: ...
    async def reconcile(
        self,
        orders: Sequence[OrderReport],
        tag_of: TagOf,
        *,
        skip: Collection[TriggerId] = (),
    ) -> list[Reconciled]:
        """Settle as placed every active or triggered row whose tag (`tag_of`) is in
        `orders`, leaving alone `skip` and another live engine's claims."""
        ...

    async def give_up(self, trigger_id: TriggerId, reason: str) -> None:
        """Fail a claim whose tag look-up found no order, without sending anything."""
        ...


class ConditionStore(Protocol):
    """The store's side of v2's conditions: notes, expiry with a reason, day ranges."""

    async def note(
        self, trigger_id: TriggerId, kind: EventKind, payload: Mapping[str, Any]
    ) -> bool:
        """Append an event to an active trigger without changing it; False if not active."""
        ...

    async def expire(self, trigger_id: TriggerId, reason: str) -> bool:
        """`active` -> `expired` with `reason` in the event; False if it was not active."""
        ...

    async def day_ranges(self, broker: str, day: date) -> dict[int, tuple[int, int]]: ...
    async def save_day_ranges(
        self, broker: str, day: date, ranges: Mapping[int, tuple[int, int]]
    ) -> None: ...
    async def forget_day_ranges(self, broker: str, before: date) -> int:
        """Drop the ranges of days before `before`; how many rows."""
        ...


class ChangeSource(Protocol):
    """Edits made by anything (psql, another engine, a hosted UI), as the supervisor reads them.

    Iterating yields a `Resync` first and after every reconnect (notifications
    may have been missed: re-read the active set), and a `Change` per changed row.
    """

    def __aiter__(self) -> AsyncGenerator[Change | Resync, None]:
        """An async generator, so a consumer can close it (and its connection) at once."""
        ...


# --- orders out -------------------------------------------------------------------------


class OrderPort(Protocol):
    """A broker's order book: Kite's REST API, or the paper broker."""

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        """The tag the order at `position` of this leg's basket carries, by the broker's
        rules (Kite: at most 20 alphanumerics): a pure function of its arguments, so any
        engine finds the order. Position 0 is a one-order leg's tag, unchanged by baskets."""
        ...

    async def place(self, intent: OrderIntent) -> str:
        """Send `intent`; the broker's order id, or a classified `BrokerError`."""
        ...

    async def find(self, tag: str) -> list[OrderReport]:
        """Every order in today's book that carries `tag`."""
        ...

    async def orders(self) -> list[OrderReport]:
        """Every order in today's book (read once), each with its tags and, where the
        broker says, its instrument: reconciliation's input."""
        ...


class ClaimStore(Protocol):
    """The store's side of the exactly-once protocol (DESIGN section 3).

    Each method is one transaction that changes the trigger's row and appends
    its events together. The store knows this engine's id and lease length.
    Every method but `claim` is conditional on the trigger being `triggered`
    under this engine's claim: a late writer cannot move a finished trigger
    (`IllegalTransition`), and an engine whose claim was taken over after its
    lease expired writes nothing more (`ClaimLost`). The store stamps every
    change with its own clock.
    """

    async def claim(self, fired: Fired, tag: str, *, sending: bool) -> bool:
        """`active` -> `triggered` under this engine's id and a fresh lease, with `fired`
        and `claimed`; with `sending`, also the first request's `order_sent`
        (`attempts` + 1), so no extra write sits between the claim and the order.
        False if anything else (an edit, a cancel, another engine) got there first."""
        ...

    async def order_sent(
        self, trigger_id: TriggerId, *, position: int = 0, tag: str | None = None
    ) -> int:
        """A request is about to leave: `order_sent`, `attempts` + 1 (returned), lease renewed."""
        ...

    async def renew(self, trigger_id: TriggerId) -> bool:
        """Extend the lease; False if the claim is no longer this engine's."""
        ...

    async def retry(
        self,
        trigger_id: TriggerId,
        attempt: int,
        reason: str,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None: ...

    async def placed(
        self,
        trigger_id: TriggerId,
        order_id: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None:
        """`attempt` 0: found in the broker's book by tag (`reconciled`) rather than answered."""
        ...

    async def failed(
        self,
        trigger_id: TriggerId,
        reason: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> None: ...

    async def released(
        self,
        trigger_id: TriggerId,
        reason: str,
        attempt: int,
        *,
        position: int = 0,
        tag: str | None = None,
    ) -> bool | None:
        """The claim given back (`active`). A basket's order: only if no other order of
        the basket is, or may be, at the broker; False if the trigger stays `triggered`."""
        ...

    async def give_up(
        self, trigger_id: TriggerId, reason: str, *, position: int = 0, tag: str | None = None
    ) -> None:
        """Fail without sending: the broker has no order with the tag and the claim is too
        old to send again (`reconciled`, then `failed`; with `tag`, that order of a basket)."""
        ...

    async def finish(self, trigger_id: TriggerId) -> Status:
        """A basket's outcome once every order is settled: `placed` if all were placed,
        else `failed` naming each failed position; `triggered` (nothing written) while
        an order is unsettled; a one-order leg's status as it stands."""
        ...


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

    async def __call__(self, request_token: str, /) -> str: ...


class BrokerRest(Protocol):
    """The broker's REST client, as the runtime closes it at the end."""

    async def aclose(self) -> None: ...


class CandleSource(Protocol):
    """The broker's historical candles (Kite's GET /instruments/historical): the trigger
    page's chart and the backtest page read them through the running hmt."""

    async def candles(
        self, instrument: Instrument, interval: str, start: datetime, end: datetime
    ) -> list[Candle]: ...
