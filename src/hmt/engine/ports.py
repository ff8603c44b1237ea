"""What the engine needs from its adapters, as small protocols defined where they are used."""

from __future__ import annotations

from typing import Protocol

from hmt.core.broker import OrderReport
from hmt.core.model import Fired, OrderIntent
from hmt.core.types import TriggerId


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
