"""`AccountExecutors`: each fired trigger goes to its own account's executor, never another's;
a linked account's order book read marks it live, its refusal pauses it alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.core.model import Fired
from hmt.core.types import Leg
from hmt.engine.accounts import AccountExecutors
from hmt.engine.executor import AuthExpired, Executor, Outcome
from hmt.engine.session import BrokerSession, SessionState
from tests.support.factories import make_trigger


@dataclass
class Stub:
    """An executor that records what it was asked to place."""

    name: str
    book: list[Any] = field(default_factory=list)
    refuse: ErrorKind | None = None
    executed: list[str] = field(default_factory=list)
    on_outcome: Any = None

    async def orders(self) -> list[Any]:
        if self.refuse is not None:
            raise BrokerError(self.refuse, f"{self.name} refused")
        return list(self.book)

    async def execute(self, fired: Fired, *, on_send: Any = None) -> Outcome:
        self.executed.append(fired.trigger.id)
        return Outcome.PLACED

    def tag(self, trigger_id: str, leg: Leg, position: int = 0) -> str:
        return f"{self.name}:{trigger_id}"


def _executors() -> tuple[AccountExecutors, Stub, Stub, BrokerSession]:
    default, second = Stub("default", book=["d1"]), Stub("second", book=["s1"])
    executors = AccountExecutors(cast(Executor, default))
    session = BrokerSession()
    executors.add("second", cast(Executor, second), session)
    return executors, default, second, session


async def test_each_trigger_goes_to_its_own_account() -> None:
    executors, default, second, _ = _executors()
    mine, theirs = make_trigger(), make_trigger(account="second")
    for trigger in (mine, theirs):
        await executors.execute(Fired(trigger, Leg.FIRST, 100))
    assert (default.executed, second.executed) == ([mine.id], [theirs.id])
    with pytest.raises(AuthExpired, match="nobody"):  # never through another account
        await executors.execute(Fired(make_trigger(account="nobody"), Leg.FIRST, 100))


async def test_the_book_read_makes_an_account_live_and_its_refusal_pauses_it_alone() -> None:
    executors, _, second, session = _executors()
    assert executors.live == set()
    assert await executors.orders() == ["d1", "s1"]
    assert executors.live == {"second"}
    second.refuse = ErrorKind.AUTH
    assert await executors.orders() == ["d1"]  # left out, paused: not a held engine
    assert session.state is SessionState.EXPIRED
    assert executors.live == set()
    renewed: list[str] = []
    executors.on_renewed = renewed.append
    session.renew("a-new-token")
    assert renewed == ["second"]
    second.refuse = ErrorKind.AMBIGUOUS
    with pytest.raises(BrokerError):  # any other failure holds firing: read again later
        await executors.orders()


def test_a_lapse_reported_by_an_order_expires_only_that_account() -> None:
    executors, _, _, session = _executors()
    executors.live.add("second")
    assert executors.expire("second", "403") is True
    assert session.state is SessionState.EXPIRED
    assert "second" not in executors.live
    assert executors.expire(None, "403") is False  # the default's: the engine's own session


async def test_a_removed_account_sends_nothing_and_its_old_session_is_not_heard() -> None:
    executors, _, second, session = _executors()
    await executors.orders()
    assert executors.live == {"second"}
    removed = executors.remove("second")
    assert removed is not None
    assert removed.session is session
    assert executors.linked == {}
    assert executors.live == set()
    with pytest.raises(AuthExpired, match="second"):  # no order through it any more
        await executors.execute(Fired(make_trigger(account="second"), Leg.FIRST, 100))
    assert second.executed == []
    assert await executors.orders() == ["d1"]  # its book is not read either
    assert executors.remove("second") is None
    # Linked again under the same id: the old session's moves no longer reach it.
    renewed: list[str] = []
    executors.on_renewed = renewed.append
    again = BrokerSession()
    executors.add("second", cast(Executor, Stub("again")), again)
    executors.live.add("second")
    session.expired("old token refused")
    session.renew("old-token-2")
    assert executors.live == {"second"}
    assert renewed == []
    again.renew("new-token")
    assert renewed == ["second"]


async def test_the_fills_read_a_linked_accounts_book_only_while_it_can() -> None:
    """`book_of` (the brackets' fill sweep): the account's own book, None when it is not
    linked here or its session is not valid (never another's), and a refusal lapses it."""
    executors, _, second, session = _executors()
    assert await executors.book_of("second") == ["s1"]
    assert await executors.book_of("nobody") is None
    second.refuse = ErrorKind.AUTH
    assert await executors.book_of("second") is None
    assert session.state is SessionState.EXPIRED
    second.refuse = None
    assert await executors.book_of("second") is None  # not valid: not read
    session.renew("a-new-token")
    assert await executors.book_of("second") == ["s1"]
    second.refuse = ErrorKind.AMBIGUOUS
    with pytest.raises(BrokerError):  # the sweep logs it and looks again later
        await executors.book_of("second")
