"""In-memory stand-ins for the engine's ports, for tests that pin the engine's decisions.

System tests run the same engine against the simulator and a real store;
these make each branch (a lost answer, a lost claim, an expired session)
happen on cue.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.errors import ClaimLost
from hmt.core.lifecycle import Status
from hmt.core.model import Fired, InFlight, OrderIntent, Trigger
from hmt.core.types import Leg, TriggerId
from hmt.engine.ports import FeedStatus
from hmt.kite.tags import broker_tag
from hmt.store.reconciliation import Reconciled

Step = Callable[["Broker", OrderIntent], str]


class Broker:
    """An order book keyed by tag; each place() runs the next scripted step."""

    def __init__(self, *steps: Step, find_errors: int = 0, book_errors: int = 0) -> None:
        self.steps = list(steps)
        self.book: dict[str, list[str]] = {}
        self.sends: list[float] = []
        self.finds = 0
        self.find_errors = find_errors
        self.books = 0  # whole-book reads (`orders`)
        self.book_errors = book_errors
        self._ids = itertools.count(1_000_000_000_000_000_000)

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return broker_tag(trigger_id, leg, position)

    def accept(self, intent: OrderIntent) -> str:
        order_id = str(next(self._ids))
        self.book.setdefault(intent.tag, []).append(order_id)
        return order_id

    async def place(self, intent: OrderIntent) -> str:
        self.sends.append(asyncio.get_running_loop().time())
        step = self.steps.pop(0) if self.steps else ok
        return step(self, intent)

    async def find(self, tag: str) -> list[OrderReport]:
        self.finds += 1
        if self.find_errors:
            self.find_errors -= 1
            raise BrokerError(ErrorKind.AMBIGUOUS, "book unavailable", http_status=503)
        return [OrderReport(order_id=i, status="OPEN", tag=tag) for i in self.book.get(tag, [])]

    async def orders(self) -> list[OrderReport]:
        """The whole book (`OrderPort.orders`), failing like `find` while scripted to."""
        self.books += 1
        if self.book_errors:
            self.book_errors -= 1
            raise BrokerError(ErrorKind.AMBIGUOUS, "book unavailable", http_status=503)
        return [
            OrderReport(order_id=i, status="OPEN", tag=tag)
            for tag, ids in self.book.items()
            for i in ids
        ]


def ok(broker: Broker, intent: OrderIntent) -> str:
    return broker.accept(intent)


def fail(kind: ErrorKind, *, accept_first: bool = False) -> Step:
    def step(broker: Broker, intent: OrderIntent) -> str:
        if accept_first:
            broker.accept(intent)  # the OMS took it; the answer was lost
        raise BrokerError(kind, f"scripted {kind}", error_type="X", http_status=500)

    return step


class ClaimLedger:
    """Claims and outcomes as the real store records them, in memory."""

    def __init__(self, *, claimable: bool = True, held: bool = True) -> None:
        self.claimable = claimable
        self.held = held  # False: another engine took the claim over (renewals fail)
        self.status: dict[TriggerId, str] = {}
        self.attempts: dict[TriggerId, int] = {}
        self.tags: dict[TriggerId, str] = {}
        self.calls: list[tuple[str, object]] = []

    async def claim(self, fired: Fired, tag: str, *, sending: bool = False) -> bool:
        self.calls.append(("claim", (fired.trigger.id, sending)))
        if self.claimable:
            self.status[fired.trigger.id] = "triggered"
            self.tags[fired.trigger.id] = tag
            self.attempts[fired.trigger.id] = self.attempts.get(fired.trigger.id, 0) + sending
        return self.claimable

    async def order_sent(self, trigger_id: TriggerId) -> int:
        self._ours(trigger_id)
        assert self.status[trigger_id] == "triggered", "order_sent without a claim"
        self.attempts[trigger_id] = self.attempts.get(trigger_id, 0) + 1
        self.calls.append(("order_sent", self.attempts[trigger_id]))
        return self.attempts[trigger_id]

    async def renew(self, trigger_id: TriggerId) -> bool:
        self.calls.append(("renew", trigger_id))
        return self.held and self.status.get(trigger_id) == "triggered"

    async def retry(self, trigger_id: TriggerId, attempt: int, reason: str) -> None:
        self._ours(trigger_id)
        self.calls.append(("retry", attempt))

    async def placed(self, trigger_id: TriggerId, order_id: str, attempt: int) -> None:
        self._finish(trigger_id, "placed", (order_id, attempt))

    async def failed(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        self._finish(trigger_id, "failed", reason)

    async def released(self, trigger_id: TriggerId, reason: str, attempt: int) -> None:
        self._finish(trigger_id, "active", reason)

    def _ours(self, trigger_id: TriggerId) -> None:
        if not self.held:
            raise ClaimLost(trigger_id)

    def _finish(self, trigger_id: TriggerId, status: str, detail: object) -> None:
        self._ours(trigger_id)
        assert self.status[trigger_id] == "triggered", "an outcome without a claim"
        self.status[trigger_id] = status
        self.calls.append((status, detail))


class Source:
    """The store's active set as the engine reads it, backed by a dict."""

    def __init__(self, ledger: ClaimLedger, triggers: Iterable[Trigger] = ()) -> None:
        self.ledger = ledger
        self.rows: dict[TriggerId, Trigger] = {t.id: t for t in triggers}
        self.left: list[InFlight] = []  # claims of an earlier life of this engine
        self.expired: list[InFlight] = []  # other engines' claims whose lease ran out
        self.given_up: list[TriggerId] = []

    def active_ids(self) -> set[TriggerId]:
        return {i for i in self.rows if self.ledger.status.get(i, "active") == "active"}

    async def active_batches(self) -> AsyncIterator[list[Trigger]]:
        yield [self.rows[i] for i in sorted(self.active_ids())]

    async def active(self, trigger_id: TriggerId) -> Trigger | None:
        return self.rows[trigger_id] if trigger_id in self.active_ids() else None

    async def adopt(
        self, *, own: bool, tag_of: Callable[[TriggerId, Leg, int], str] | None = None
    ) -> list[InFlight]:
        """`left` at start-up (`own`), `expired` on a sweep; each handed out once."""
        taken = self.left if own else self.expired
        if own:
            self.left = []
        else:
            self.expired = []
        for item in taken:
            self.ledger.status[item.intent.trigger_id] = "triggered"
        return taken

    async def expire_due(self) -> list[TriggerId]:
        return []

    async def reconcile(
        self,
        orders: Sequence[OrderReport],
        tag_of: Callable[[TriggerId, Leg, int], str],
        *,
        skip: Collection[TriggerId] = (),
    ) -> list[Reconciled]:
        """Active or triggered rows whose tag is in `orders` end placed (as the store does)."""
        by_tag = {report.tag: report for report in orders if report.tag}
        settled = []
        for trigger_id, trigger in self.rows.items():
            status = self.ledger.status.get(trigger_id, "active")
            if status not in ("active", "triggered") or trigger_id in skip:
                continue
            for leg in trigger.legs:
                report = by_tag.get(tag_of(trigger_id, leg))
                if report is not None:
                    self.ledger.status[trigger_id] = "placed"
                    self.ledger.calls.append(("reconciled", (trigger_id, report.order_id)))
                    settled.append(Reconciled(trigger_id, report.order_id, Status(status)))
                    break
        return settled

    async def give_up(self, trigger_id: TriggerId, reason: str) -> None:
        self.given_up.append(trigger_id)
        self.ledger.status[trigger_id] = "failed"


class Feed:
    """The ticker's subscription set, without a socket."""

    def __init__(self) -> None:
        self.tokens: set[int] = set()
        self.access_token = ""
        self.running = False

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.tokens |= set(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.tokens -= set(tokens)

    def set_access_token(self, access_token: str) -> None:
        self.access_token = access_token

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    @property
    def connected(self) -> bool:
        return self.running

    def status(self) -> FeedStatus:
        return FeedStatus(state="connected" if self.running else "stopped", connected=self.running)
