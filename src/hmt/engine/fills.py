"""Brackets' fills: the broker's order updates in, exits armed out.

Two ways in, one way out (docs/engine.md, "Brackets"). Order updates pushed on
the ticker (`on_update`) are matched to a waiting bracket by their tag (the
adapter's tag of the entry trigger's order, as the last sweep listed them); an
update with any other tag pokes the sweep instead. The
sweep (`sweep`: at start, after each reconnection of the ticker, and every
`interval` seconds) reads the order book once and looks up every waiting
bracket whose entry is at the broker, covering updates missed while the ticker
was down, while the engine was not running, or pushed before the claim's tag
could be matched. Both apply the broker's word through the store in one
transaction (`BracketStore.report`, the core's decision); a report older than
what is stored changes nothing, so their order does not matter. An exit armed
or grown is then put in the book (`on_exit`); after a crash, the book's load
finds it instead.

Each entry's order is in its own account's book only (docs/accounts.md): the
sweep reads the book of every account with an entry at the broker, once, and
looks each entry up in its account's book, never in another's. A linked
account's book comes from `book_of`, None while it is not in the engine or its
session is not valid: its entries wait for a later sweep. The ticker's updates
are the default account's (Kite's ticker runs on its token): only its entries'
tags are matched; any other update pokes the sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from hmt.core.brackets import Applied, EntryReport, Waiting
from hmt.core.broker import OrderReport
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId
from hmt.engine.ports import OrderPort
from hmt.failpoints import failpoint
from hmt.waits import woken

log = structlog.get_logger(__name__)

SWEEP_S = 5.0
_ENDED = frozenset({Status.FAILED, Status.CANCELLED, Status.EXPIRED})
_AT_BROKER = frozenset({Status.TRIGGERED, Status.PLACED, Status.FAILED})
# A linked account's order book by its id; None while it cannot be read (not in the
# engine, or its session not valid): `AccountExecutors.book_of`.
BookOf = Callable[[str], Awaitable[Sequence[OrderReport] | None]]


class FillStore(Protocol):
    """The store's side of brackets (`hmt.store.brackets.BracketStore`)."""

    async def live(self) -> list[Waiting]: ...
    async def by_tag(self, tag: str) -> TriggerId | None: ...
    async def report(self, bracket_id: TriggerId, report: EntryReport) -> Applied | None: ...
    async def entry_ended(self, bracket_id: TriggerId) -> Status | None: ...


class Fills:
    """Learns the entry orders' fills and arms the brackets' exits."""

    def __init__(
        self,
        store: FillStore,
        orders: OrderPort,
        on_exit: Callable[[TriggerId], Awaitable[None]],
        *,
        book_of: BookOf | None = None,
        interval: float = SWEEP_S,
    ) -> None:
        """`orders`: the default account's order port (its book, and the tag rule);
        `book_of`: the linked accounts' books (None: no linked account is traded)."""
        self._store, self._orders, self._on_exit = store, orders, on_exit
        self._book_of = book_of
        self._interval = interval
        self._poked = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # The entry tags of the brackets waiting for fills at the last sweep (the adapter's
        # tag rule: an entry's tag is known before it fires): an update is matched here,
        # without a database read; an unknown tag only pokes the sweep (coalesced).
        self._waiting: dict[str, TriggerId] = {}
        self.updates = self.applied = self.sweeps = 0

    def on_update(self, report: OrderReport) -> None:
        """An order update from the ticker (on the event loop): a waiting bracket's entry
        is applied in the background; any other tagged order pokes the sweep, which finds
        a bracket created since the last one (most updates are other triggers' orders)."""
        tags = [t for t in (report.tag, *report.tags) if t]
        if not tags:
            return
        self.updates += 1
        bracket = next((self._waiting[t] for t in tags if t in self._waiting), None)
        if bracket is None:
            self.poke()
            return
        task = asyncio.get_running_loop().create_task(self._pushed(bracket, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def poke(self) -> None:
        """Sweep now (the ticker reconnected: updates may have been missed)."""
        self._poked.set()

    async def run(self) -> None:
        """Sweep at once, then after every poke or `interval` seconds."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("fill_sweep_failed")
            await woken(self._poked, self._interval)
            self._poked.clear()

    async def sweep(self) -> int:
        """Look up every waiting bracket's entry order in its account's book; how many
        changed. A book that cannot be read now leaves its account's brackets to the
        next sweep; the other accounts' go on."""
        self.sweeps += 1
        waiting = await self._store.live()
        # Pushed updates come on the default account's ticker: only its entries match.
        self._waiting = {
            self._orders.tag(b.id, Leg.FIRST, 0): b.id for b in waiting if b.account is None
        }
        changed = 0
        books: dict[str | None, Sequence[OrderReport] | None] = {}
        for bracket in waiting:
            if bracket.entry_status in _ENDED and bracket.order_id is None:
                changed += await self._store.entry_ended(bracket.id) is not None
                continue
            if bracket.entry_status not in _AT_BROKER or bracket.broker_tag is None:
                continue  # not fired yet: nothing at the broker
            if bracket.account not in books:
                books[bracket.account] = await self._book(bracket.account)
            book = books[bracket.account]
            if book is None:
                continue  # its account's book cannot be read now: the next sweep looks
            found = [r for r in book if r.carries(bracket.broker_tag)]
            if found:
                best = max(found, key=lambda r: r.filled_quantity)
                changed += await self._apply(bracket.id, best)
            elif bracket.entry_status is Status.FAILED:
                changed += await self._store.entry_ended(bracket.id) is not None
        return changed

    async def _book(self, account: str | None) -> Sequence[OrderReport] | None:
        """`account`'s order book (None: the default's), or None if it cannot be read now."""
        try:
            if account is None:
                return await self._orders.orders()
            if self._book_of is None:
                return None  # no linked account is traded here: never another's book
            return await self._book_of(account)
        except Exception as error:
            log.warning(
                "fill_book_unreadable",
                account=account or "default",
                error=str(error) or type(error).__name__,
            )
            return None

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _pushed(self, bracket: TriggerId, report: OrderReport) -> None:
        try:
            await self._apply(bracket, report)
        except Exception:
            # The sweep looks this order up again: a push is only the fast way.
            log.exception("order_update_failed", order_id=report.order_id)

    async def _apply(self, bracket: TriggerId, report: OrderReport) -> bool:
        entry = EntryReport(
            report.order_id, report.status, report.filled_quantity, report.status_message
        )
        failpoint("before_arm")
        applied = await self._store.report(bracket, entry)
        if applied is None:
            return False
        self.applied += 1
        decision = applied.decision
        log.info(
            "bracket_report",
            bracket_id=bracket,
            status=decision.state.status.value,
            filled=decision.state.filled,
            armed=decision.state.armed,
            exit_id=applied.exit_id,
        )
        if applied.exit_id is not None:
            failpoint("after_arm")
            await self._on_exit(applied.exit_id)
        return True
