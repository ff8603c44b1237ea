"""What the engine needs from its adapters, as small protocols defined where they are used."""

from __future__ import annotations

from typing import Protocol

from hmt.core.broker import OrderReport
from hmt.core.errors import FieldError
from hmt.core.instruments import Instrument, Listing
from hmt.core.model import Fired, OrderIntent
from hmt.core.types import Exchange, InstrumentToken, TriggerId


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
