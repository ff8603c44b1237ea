"""Broker accounts: the API key in clear, the access token and API secret sealed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database
from hmt.store.sealing import Sealer
from hmt.store.tables import broker_accounts as a
from hmt.store.users import ensure_user

# Field names bound into the sealed values (associated data), not secrets.
ACCESS_TOKEN = "access_token"  # noqa: S105
API_SECRET = "api_secret"  # noqa: S105


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """A user's broker credentials, opened; secrets stay `SecretStr` (hidden in reprs)."""

    user_id: str
    broker: str
    api_key: str
    access_token: SecretStr | None
    api_secret: SecretStr | None
    updated_at: datetime


class AccountStore:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.clock = clock

    async def save(
        self,
        user_id: str,
        *,
        api_key: str,
        access_token: SecretStr | None,
        api_secret: SecretStr | None = None,
        broker: str = "kite",
    ) -> None:
        """Store (or replace) `user_id`'s credentials for `broker`, sealing the secrets."""
        now = self.clock()
        values = {
            "api_key": api_key,
            "access_token_sealed": self._seal(access_token, user_id, ACCESS_TOKEN),
            "api_secret_sealed": self._seal(api_secret, user_id, API_SECRET),
            "updated_at": now,
        }

        async def work(conn: AsyncConnection) -> None:
            await ensure_user(conn, user_id, now)
            found = await conn.execute(
                update(a).where(a.c.user_id == user_id, a.c.broker == broker).values(values)
            )
            if found.rowcount == 0:
                await conn.execute(a.insert().values(user_id=user_id, broker=broker, **values))

        await self.db.transaction(work)

    async def load(self, user_id: str, broker: str = "kite") -> BrokerAccount | None:
        """The credentials, opened; `InvalidTag` if a sealed value is not this row's."""

        async def work(conn: AsyncConnection) -> BrokerAccount | None:
            query = select(a).where(a.c.user_id == user_id, a.c.broker == broker)
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            return BrokerAccount(
                user_id=user_id,
                broker=broker,
                api_key=row.api_key,
                access_token=self._open(row.access_token_sealed, user_id, ACCESS_TOKEN),
                api_secret=self._open(row.api_secret_sealed, user_id, API_SECRET),
                updated_at=row.updated_at,
            )

        return await self.db.transaction(work, write=False)

    async def reseal_all(self) -> int:
        """Re-encrypt every sealed value under the current key; returns how many changed."""

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            for row in (await conn.execute(select(a))).all():
                values = {}
                for column, field in (
                    ("access_token_sealed", ACCESS_TOKEN),
                    ("api_secret_sealed", API_SECRET),
                ):
                    sealed = getattr(row, column)
                    if sealed is not None and self.sealer.needs_reseal(sealed):
                        values[column] = self.sealer.reseal(
                            sealed, user_id=row.user_id, field=field
                        )
                if values:
                    await conn.execute(
                        update(a)
                        .where(a.c.user_id == row.user_id, a.c.broker == row.broker)
                        .values(values)
                    )
                    changed += len(values)
            return changed

        return await self.db.transaction(work)

    def _seal(self, secret: SecretStr | None, user_id: str, field: str) -> str | None:
        if secret is None:
            return None
        return self.sealer.seal(secret.get_secret_value(), user_id=user_id, field=field)

    def _open(self, sealed: str | None, user_id: str, field: str) -> SecretStr | None:
        if sealed is None:
            return None
        return SecretStr(self.sealer.open(sealed, user_id=user_id, field=field))
