"""API bearer tokens: random, shown once, stored only as SHA-256, revocable.

A token has 256 bits from `secrets`, so one unsalted SHA-256 is enough: there is
nothing to brute-force. The look-up finds the row by hash and confirms it with a
constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.store.db import Database
from hmt.store.tables import api_tokens as k
from hmt.store.users import ensure_user

PREFIX = "hmt_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: str
    user_id: str
    operator: bool


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: str
    user_id: str
    operator: bool
    token: str  # the only time the plaintext exists

    def __repr__(self) -> str:
        return f"IssuedToken(token_id={self.token_id!r}, user_id={self.user_id!r}, token='***')"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    def __init__(
        self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.clock = clock

    async def issue(
        self, user_id: str, *, operator: bool = False, name: str | None = None
    ) -> IssuedToken:
        """A new token for `user_id` (created if new); its plaintext is returned once."""
        token = PREFIX + secrets.token_urlsafe(32)
        token_id = str(uuid.uuid4())
        now = self.clock()

        async def work(conn: AsyncConnection) -> None:
            await ensure_user(conn, user_id, now)
            await conn.execute(
                k.insert().values(
                    id=token_id,
                    user_id=user_id,
                    token_hash=digest(token),
                    operator=operator,
                    name=name,
                    created_at=now,
                )
            )

        await self.db.transaction(work)
        return IssuedToken(token_id, user_id, operator, token)

    async def authenticate(self, token: str) -> Principal | None:
        """Whose token this is, or None for an unknown, malformed or revoked one."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        wanted = digest(token)

        async def work(conn: AsyncConnection) -> Principal | None:
            query = select(k.c.id, k.c.user_id, k.c.operator, k.c.token_hash).where(
                k.c.token_hash == wanted, k.c.revoked_at.is_(None)
            )
            row = (await conn.execute(query)).first()
            if row is None or not hmac.compare_digest(bytes(row.token_hash), wanted):
                return None
            return Principal(str(row.id), row.user_id, bool(row.operator))

        return await self.db.transaction(work, write=False)

    async def revoke(self, token_id: str) -> bool:
        """Stop a token working at once; False if there was no such live token."""
        try:
            uuid.UUID(token_id)
        except ValueError:
            return False
        now = self.clock()

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                update(k).where(k.c.id == token_id, k.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            return result.rowcount == 1

        return await self.db.transaction(work)
