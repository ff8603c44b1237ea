"""Several broker accounts in one engine: each account's orders through its own executor.

Every account has its own `Executor` (its order port and its own `Throttle`: the
broker's limits are per account) and its own `BrokerSession`. `AccountExecutors`
has the surface of one `Executor` and routes by the trigger's account
(`Trigger.account`, `OrderIntent.account`; None is the default account, whose
session is the engine's own). docs/accounts.md.

A linked account's orders may go only while it is `live`: its session is valid
and its order book has been read since the session began (a claim lost with the
database may have placed an order there: exactly once needs that read first).
The engine keeps the fired triggers of an account that is not live out of its
book (they stay `active`: nothing is claimed) and puts them back when the
account goes live again (`Engine.account_renewed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from hmt.core.broker import BrokerError, ErrorKind, OrderReport
from hmt.core.errors import HmtError
from hmt.core.model import Fired, OrderIntent
from hmt.core.throttle import Limit
from hmt.core.types import Leg, TriggerId
from hmt.engine.executor import AuthExpired, Executor, OnOutcome, Outcome
from hmt.engine.session import BrokerSession

log = structlog.get_logger("hmt.accounts")

DEFAULT_ACCOUNT = "default"  # the settings' account's id; NULL in a trigger's row


class UnlinkRefused(HmtError):
    """The engine cannot let an account go now (`rule` names why; nothing was changed)."""

    def __init__(self, account_id: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Linked:
    """A linked account as the engine uses it."""

    executor: Executor
    session: BrokerSession


class AccountExecutors:
    """The default account's executor and each linked account's, as one executor."""

    def __init__(self, default: Executor) -> None:
        self.default = default
        self._linked: dict[str, Linked] = {}
        # Linked accounts whose orders may go now (session valid, order book read).
        self.live: set[str] = set()
        # Called with an account's id when its session becomes valid again (the engine
        # reads its book, then re-arms its triggers).
        self.on_renewed: Callable[[str], None] | None = None
        self._on_outcome: OnOutcome | None = None

    @property
    def linked(self) -> Mapping[str, Linked]:
        return self._linked

    def add(self, account_id: str, executor: Executor, session: BrokerSession) -> None:
        """Use a linked account from now on; live once its order book has been read."""
        if account_id in self._linked:
            raise ValueError(f"account {account_id!r} is already in use")
        executor.on_outcome = self._on_outcome
        linked = Linked(executor, session)
        self._linked[account_id] = linked
        # Heard only while this very account is in use: once removed (or removed and
        # linked again under the same id), its old session's moves change nothing.
        session.on_expired.append(
            lambda reason: (
                self._lapsed(account_id, reason) if self._current(account_id, linked) else None
            )
        )
        session.on_valid.append(
            lambda: self._renewed(account_id) if self._current(account_id, linked) else None
        )
        log.info("account_added", account=account_id, session=session.state.value)

    def remove(self, account_id: str) -> Linked | None:
        """Stop using a linked account (it is being unlinked): its executor, session and
        live flag gone, so no order can go through it from now on (`_of` refuses it as
        an account not linked here). Its parts, or None if it was not in use."""
        linked = self._linked.pop(account_id, None)
        self.live.discard(account_id)
        if linked is not None:
            linked.executor.on_outcome = None
            log.info("account_removed", account=account_id)
        return linked

    def _current(self, account_id: str, linked: Linked) -> bool:
        return self._linked.get(account_id) is linked

    def headroom(self) -> dict[str, tuple[tuple[Limit, int], ...]]:
        """Each account's throttle headroom (the default's under `default`): the broker
        counts orders per account, so each has its own."""
        shown = {DEFAULT_ACCOUNT: self.default.headroom()}
        for account_id, linked in self._linked.items():
            shown[account_id] = linked.executor.headroom()
        return shown

    def session_of(self, account_id: str) -> BrokerSession | None:
        linked = self._linked.get(account_id)
        return None if linked is None else linked.session

    def expire(self, account_id: str | None, reason: str) -> bool:
        """A linked account's session was refused: pause it; False for the default."""
        if account_id is None:
            return False
        linked = self._linked.get(account_id)
        if linked is None:
            self.live.discard(account_id)
        else:
            linked.session.expired(reason)
        return True

    def _lapsed(self, account_id: str, reason: str) -> None:
        self.live.discard(account_id)
        log.error("account_login_required", account=account_id, reason=reason)

    def _renewed(self, account_id: str) -> None:
        if self.on_renewed is not None:
            self.on_renewed(account_id)

    # --- one executor's surface ------------------------------------------------

    @property
    def on_outcome(self) -> OnOutcome | None:
        return self._on_outcome

    @on_outcome.setter
    def on_outcome(self, report: OnOutcome | None) -> None:
        self._on_outcome = report
        self.default.on_outcome = report
        for linked in self._linked.values():
            linked.executor.on_outcome = report

    def tag(self, trigger_id: TriggerId, leg: Leg, position: int = 0) -> str:
        # One broker: one tag rule, and a tag names its trigger whatever the account.
        return self.default.tag(trigger_id, leg, position)

    async def orders(self, *, default: bool = True) -> list[OrderReport]:
        """Every account's order book: the default's (raises as one executor does; left
        out with `default=False`, when its session is not valid and the engine reads it
        after its login), then each linked account's whose session is valid. A linked
        account refused (AUTH) is paused and left out (its triggers cannot fire until
        its book is read after a new login); any other failure raises, so firing stays
        held and the read is tried again (never guessed)."""
        reports = list(await self.default.orders()) if default else []
        for account_id, linked in self._linked.items():
            if not linked.session.valid:
                self.live.discard(account_id)
                continue
            try:
                reports += await linked.executor.orders()
            except BrokerError as error:
                if error.kind is not ErrorKind.AUTH:
                    raise
                linked.session.expired(error.message)
                continue
            self.live.add(account_id)
        return reports

    async def orders_of(self, account_id: str) -> list[OrderReport]:
        """One linked account's order book (its renewal's read)."""
        return list(await self._of(account_id).orders())

    async def book_of(self, account_id: str) -> list[OrderReport] | None:
        """A linked account's order book for the brackets' fills (`Fills`): None while it
        is not in this engine or its session is not valid (never another account's
        book: its entries wait). Refused (AUTH): its session lapses, and None."""
        linked = self._linked.get(account_id)
        if linked is None or not linked.session.valid:
            return None
        try:
            return list(await linked.executor.orders())
        except BrokerError as error:
            if error.kind is not ErrorKind.AUTH:
                raise
            if self._current(account_id, linked):
                linked.session.expired(error.message)
            return None

    def _of(self, account_id: str | None) -> Executor:
        if account_id is None:
            return self.default
        linked = self._linked.get(account_id)
        if linked is None:
            # Never through another account: its claim waits (settled once it is linked).
            raise AuthExpired(f"account {account_id!r} is not linked in this engine")
        return linked.executor

    async def execute(self, fired: Fired, *, on_send: Callable[[], None] | None = None) -> Outcome:
        return await self._of(fired.trigger.account).execute(fired, on_send=on_send)

    async def settle(
        self,
        intent: OrderIntent,
        *,
        ambiguous: bool = False,
        on_send: Callable[[], None] | None = None,
        slot_taken: bool = False,
        leased_at: float | None = None,
    ) -> Outcome:
        return await self._of(intent.account).settle(
            intent, ambiguous=ambiguous, on_send=on_send, slot_taken=slot_taken, leased_at=leased_at
        )

    async def settle_basket(
        self,
        intents: Sequence[OrderIntent],
        *,
        ambiguous: bool = False,
        resend: bool = True,
        on_send: Callable[[], None] | None = None,
        leased_at: float | None = None,
    ) -> Outcome:
        return await self._of(intents[0].account).settle_basket(
            intents, ambiguous=ambiguous, resend=resend, on_send=on_send, leased_at=leased_at
        )

    async def resolve(
        self, intent: OrderIntent, *, leased_at: float | None = None
    ) -> Outcome | None:
        return await self._of(intent.account).resolve(intent, leased_at=leased_at)
