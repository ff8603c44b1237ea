"""What the engine needs from its adapters, as small protocols defined where they are used."""

from __future__ import annotations

from typing import Protocol

from hmt.core.broker import OrderReport
from hmt.core.model import Fired, OrderIntent
from hmt.core.types import Leg, TriggerId


class OrderPort(Protocol):
    """A broker's order book: Kite's REST API, or the paper broker."""

    def tag(self, trigger_id: str, leg: Leg) -> str:
        """The tag an order of this leg carries, by the broker's rules (Kite: at most 20
        alphanumerics): a pure function of its arguments, so any engine finds the order."""
        ...

    async def place(self, intent: OrderIntent) -> str:
        """Send `intent`; the broker's order id, or a classified `BrokerError`."""
        ...

    async def find(self, tag: str) -> list[OrderReport]:
        """Every order in today's book that carries `tag`."""
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

    async def order_sent(self, trigger_id: TriggerId) -> int:
        """A request is about to leave: `order_sent`, `attempts` + 1 (returned), lease renewed."""
        ...

    async def renew(self, trigger_id: TriggerId) -> bool:
        """Extend the lease; False if the claim is no longer this engine's."""
        ...

    async def retry(self, trigger_id: TriggerId, attempt: int, reason: str) -> None: ...

    async def placed(self, trigger_id: TriggerId, order_id: str, attempt: int) -> None:
        """`attempt` 0: found in the broker's book by tag (`reconciled`) rather than answered."""
        ...

    async def failed(self, trigger_id: TriggerId, reason: str, attempt: int) -> None: ...

    async def released(self, trigger_id: TriggerId, reason: str, attempt: int) -> None: ...
