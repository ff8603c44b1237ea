"""`Fills` with several accounts (docs/accounts.md): each waiting entry is looked up in its
own account's book, never in another's; an account whose book cannot be read now waits
for a later sweep without holding the others; the ticker's updates (the default
account's) match only the default account's entries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from hmt.core.brackets import Applied, EntryReport, Waiting
from hmt.core.broker import OrderReport
from hmt.core.lifecycle import Status
from hmt.core.types import Leg, TriggerId
from hmt.engine.fills import Fills
from hmt.engine.ports import OrderPort


def _tag(trigger_id: str) -> str:
    return f"t-{trigger_id}"


def _waiting(trigger_id: str, account: str | None) -> Waiting:
    return Waiting(TriggerId(trigger_id), "u1", Status.PLACED, _tag(trigger_id), None, account)


@dataclass
class Store:
    waiting: list[Waiting]
    reports: list[tuple[str, EntryReport]] = field(default_factory=list)

    async def live(self) -> list[Waiting]:
        return list(self.waiting)

    async def by_tag(self, tag: str) -> TriggerId | None:
        return None

    async def report(self, bracket_id: TriggerId, report: EntryReport) -> Applied | None:
        self.reports.append((bracket_id, report))
        return None

    async def entry_ended(self, bracket_id: TriggerId) -> Status | None:
        return None


@dataclass
class Port:
    book: list[OrderReport]
    reads: int = 0

    async def orders(self) -> list[OrderReport]:
        self.reads += 1
        return list(self.book)

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return _tag(trigger_id)


def _row(order_id: str, trigger_id: str, filled: int) -> OrderReport:
    return OrderReport(order_id, "OPEN", _tag(trigger_id), filled_quantity=filled)


async def _no_exit(exit_id: TriggerId) -> None:
    return None


def _fills(
    waiting: list[Waiting], default: list[OrderReport], books: dict[str, Any]
) -> tuple[Fills, Store, Port, list[str]]:
    store, port, asked = Store(waiting), Port(default), []

    async def book_of(account: str) -> Sequence[OrderReport] | None:
        asked.append(account)
        found = books.get(account)
        if isinstance(found, Exception):
            raise found
        return cast("Sequence[OrderReport] | None", found)

    fills = Fills(store, cast(OrderPort, port), _no_exit, book_of=book_of)
    return fills, store, port, asked


async def test_each_entry_is_looked_up_in_its_own_accounts_book_only() -> None:
    waiting = [
        _waiting("a", None),
        _waiting("b", "family-2"),
        _waiting("b2", "family-2"),
        _waiting("c", "lapsed"),
        _waiting("d", "broken"),
    ]
    # The default's book carries every tag: a linked entry must still not be read there.
    default = [_row(f"D-{i}", i, 9) for i in ("a", "b", "b2", "c", "d")]
    books = {"family-2": [_row("F-b", "b", 3)], "lapsed": None, "broken": OSError("cut")}
    fills, store, port, asked = _fills(waiting, default, books)
    await fills.sweep()
    assert [(b, r.order_id, r.filled) for b, r in store.reports] == [
        ("a", "D-a", 9),
        ("b", "F-b", 3),
    ]  # b2 not in family-2's book: nothing; c and d wait (no book now), never the default's
    assert port.reads == 1
    assert sorted(asked) == ["broken", "family-2", "lapsed"]  # each book read once


async def test_linked_entries_without_book_of_wait_and_updates_match_the_defaults_only() -> None:
    waiting = [_waiting("a", None), _waiting("b", "family-2")]
    default = [_row("D-a", "a", 1), _row("D-b", "b", 1)]
    store, port = Store(waiting), Port(default)
    fills = Fills(store, cast(OrderPort, port), _no_exit)
    await fills.sweep()
    assert [b for b, _ in store.reports] == ["a"]
    store.reports.clear()
    fills.on_update(_row("D-b", "b", 2))  # not the default's entry: only a poke
    fills.on_update(_row("D-a", "a", 2))
    await asyncio.sleep(0)
    await fills.drain()
    assert [(b, r.filled) for b, r in store.reports] == [("a", 2)]
