"""Linked broker accounts (`hmt_accounts`, revision 0011; docs/accounts.md).

A row names one account at a broker: its id, its owner, a label, the API key in
clear, and the API secret and access token sealed. Each sealed value is bound to
the account's id and its field (the sealer's associated data), so a value copied
into another account's row does not open. The default account is not a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from pydantic import SecretStr
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import HmtError
from hmt.core.lifecycle import Status
from hmt.store.accounts import ACCESS_TOKEN, API_SECRET
from hmt.store.db import Database
from hmt.store.sealing import Sealer
from hmt.store.tables import accounts as a
from hmt.store.tables import gtt_orders as g
from hmt.store.users import ensure_user


class AccountExists(HmtError):
    """An account with this id is linked already (by this user or another)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"an account {account_id!r} is linked already")
        self.account_id = account_id


class AccountInUse(HmtError):
    """An account cannot be unlinked while triggers of it may still send an order."""

    def __init__(self, account_id: str, triggers: int) -> None:
        super().__init__(
            f"account {account_id!r} has {triggers} trigger(s) active, paused or triggered: "
            "cancel them (or move them to another account) before unlinking it"
        )
        self.account_id = account_id
        self.triggers = triggers


# A trigger in one of these may still send an order through its account.
UNSETTLED = (Status.ACTIVE.value, Status.PAUSED.value, Status.TRIGGERED.value)


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    """A linked account; its secrets opened only by `LinkedAccounts.open` (hidden in reprs)."""

    id: str
    user_id: str
    broker: str
    label: str
    api_key: str
    api_secret: SecretStr | None = None
    access_token: SecretStr | None = None


async def _unsettled(conn: AsyncConnection, account_id: str) -> int:
    query = (
        select(func.count())
        .select_from(g)
        .where(g.c.account == account_id, g.c.status.in_(UNSETTLED))
    )
    return int((await conn.execute(query)).scalar_one())


def _bound(account_id: str) -> str:
    """What a sealed value of this account is bound to (the sealer's `user_id`)."""
    return f"account:{account_id}"


class LinkedAccounts:
    def __init__(
        self,
        db: Database,
        sealer: Sealer | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`sealer` None (no HMT_SECRET_KEY): the accounts can be listed, not linked or opened."""
        self.db = db
        self.sealer = sealer
        self.clock = clock

    async def link(self, account: LinkedAccount) -> LinkedAccount:
        """Store a new account, its secrets sealed; `AccountExists` if the id is taken."""
        if self.sealer is None:
            raise RuntimeError("linking an account needs HMT_SECRET_KEY")
        now = self.clock()
        values = {
            "id": account.id,
            "user_id": account.user_id,
            "broker": account.broker,
            "label": account.label,
            "api_key": account.api_key,
            "api_secret_sealed": self._seal(account.api_secret, account.id, API_SECRET),
            "access_token_sealed": self._seal(account.access_token, account.id, ACCESS_TOKEN),
            "created_at": now,
            "updated_at": now,
        }

        async def work(conn: AsyncConnection) -> None:
            await ensure_user(conn, account.user_id, now)
            taken = await conn.execute(select(a.c.id).where(a.c.id == account.id))
            if taken.first() is not None:
                raise AccountExists(account.id)
            await conn.execute(a.insert().values(values))

        try:
            await self.db.transaction(work)
        except IntegrityError:  # two links of one id at once: the other won
            raise AccountExists(account.id) from None
        return account

    async def mine(self, user_id: str) -> list[LinkedAccount]:
        """`user_id`'s accounts by id, secrets not opened."""

        async def work(conn: AsyncConnection) -> list[LinkedAccount]:
            query = select(a.c.id, a.c.user_id, a.c.broker, a.c.label, a.c.api_key)
            rows = await conn.execute(query.where(a.c.user_id == user_id).order_by(a.c.id))
            return [LinkedAccount(r.id, r.user_id, r.broker, r.label, r.api_key) for r in rows]

        return await self.db.transaction(work, write=False)

    async def owned(self, user_id: str, account_id: str) -> LinkedAccount | None:
        """The account if `user_id` linked it (another user's reads as unknown)."""
        return next((x for x in await self.mine(user_id) if x.id == account_id), None)

    async def in_use(self, account_id: str) -> int:
        """How many triggers of the account are active, paused or triggered."""
        return await self.db.transaction(lambda conn: _unsettled(conn, account_id), write=False)

    async def unlink(self, account_id: str) -> bool:
        """Delete the account's row (its sealed secrets with it); False if there is none.
        `AccountInUse` (nothing deleted) if a trigger of it is active, paused or triggered,
        counted again in the deleting transaction. Terminal triggers keep their `account`."""

        async def work(conn: AsyncConnection) -> bool:
            count = await _unsettled(conn, account_id)
            if count:
                raise AccountInUse(account_id, count)
            deleted = await conn.execute(delete(a).where(a.c.id == account_id))
            return bool(deleted.rowcount)

        return await self.db.transaction(work)

    async def has_api_secret(self, account_id: str) -> bool:
        """Whether the account was linked with its API secret (its login's exchange needs
        it); read without opening it, so it needs no HMT_SECRET_KEY."""

        async def work(conn: AsyncConnection) -> bool:
            query = select(a.c.api_secret_sealed).where(a.c.id == account_id)
            return (await conn.execute(query)).scalar() is not None

        return await self.db.transaction(work, write=False)

    async def open_all(self) -> list[LinkedAccount]:
        """Every account with its secrets opened (the engine's start); `InvalidTag` if a
        sealed value is not its row's or another HMT_SECRET_KEY sealed it."""
        return await self._opened(select(a).order_by(a.c.id))

    async def open_readable(self) -> tuple[list[LinkedAccount], list[str]]:
        """Every account whose secrets open, and the ids of those that do not (sealed
        under another HMT_SECRET_KEY, or a value not its row's): one unreadable row
        leaves only itself out (the engine's start)."""

        async def work(conn: AsyncConnection) -> tuple[list[LinkedAccount], list[str]]:
            opened: list[LinkedAccount] = []
            unreadable: list[str] = []
            for r in (await conn.execute(select(a).order_by(a.c.id))).all():
                try:
                    opened.append(self._account(r))
                except InvalidTag:
                    unreadable.append(r.id)
            return opened, unreadable

        return await self.db.transaction(work, write=False)

    async def open(self, account_id: str) -> LinkedAccount | None:
        """One account with its secrets opened (its login's exchange), None if unknown."""
        found = await self._opened(select(a).where(a.c.id == account_id))
        return found[0] if found else None

    async def _opened(self, query: Select[Any]) -> list[LinkedAccount]:
        async def work(conn: AsyncConnection) -> list[LinkedAccount]:
            return [self._account(r) for r in (await conn.execute(query)).all()]

        return await self.db.transaction(work, write=False)

    def _account(self, r: Any) -> LinkedAccount:
        return LinkedAccount(
            r.id,
            r.user_id,
            r.broker,
            r.label,
            r.api_key,
            self._open(r.api_secret_sealed, r.id, API_SECRET),
            self._open(r.access_token_sealed, r.id, ACCESS_TOKEN),
        )

    async def reseal_all(self) -> int:
        """Re-seal every account's secrets under the current key (after a key rotation),
        bound as before to the account's id and field; returns how many values changed.

        One transaction: a value that does not open (`InvalidTag`) rolls back every
        row, so nothing is written half-way; a rerun changes only what is left."""
        sealer = self.sealer
        if sealer is None:
            raise RuntimeError("re-sealing needs HMT_SECRET_KEY")

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            for row in (await conn.execute(select(a).order_by(a.c.id))).all():
                values = {}
                for column, field in (
                    ("api_secret_sealed", API_SECRET),
                    ("access_token_sealed", ACCESS_TOKEN),
                ):
                    sealed = getattr(row, column)
                    if sealed is not None and sealer.needs_reseal(sealed):
                        values[column] = sealer.reseal(sealed, user_id=_bound(row.id), field=field)
                if values:
                    await conn.execute(update(a).where(a.c.id == row.id).values(values))
                    changed += len(values)
            return changed

        return await self.db.transaction(work)

    async def save_token(self, account_id: str, access_token: SecretStr) -> None:
        """Keep a new access token of the account, sealed (its next login or session)."""
        sealed = self._seal(access_token, account_id, ACCESS_TOKEN)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(a)
                .where(a.c.id == account_id)
                .values(access_token_sealed=sealed, updated_at=self.clock())
            )

        await self.db.transaction(work)

    def _seal(self, secret: SecretStr | None, account_id: str, field: str) -> str | None:
        if secret is None:
            return None
        if self.sealer is None:
            raise RuntimeError("sealing needs HMT_SECRET_KEY")
        return self.sealer.seal(secret.get_secret_value(), user_id=_bound(account_id), field=field)

    def _open(self, sealed: str | None, account_id: str, field: str) -> SecretStr | None:
        if sealed is None:
            return None
        if self.sealer is None:
            raise RuntimeError("opening a sealed value needs HMT_SECRET_KEY")
        return SecretStr(self.sealer.open(sealed, user_id=_bound(account_id), field=field))
