"""API bearer tokens: random, shown once, stored only as SHA-256, revocable.

A token has 256 bits from `secrets`, so one unsalted SHA-256 is enough: there is
nothing to brute-force. The look-up finds the row by hash and confirms it with a
constant-time comparison.

A token that authenticated is remembered for `CACHE_TTL_S` (issue 12: its
look-up was a transaction of its own in every request). Revoking through any
`TokenStore` of this process forgets it at once; a revocation made elsewhere
(`hmt token revoke`, another process) takes effect within `CACHE_TTL_S`.
Unknown and revoked tokens are never remembered: a token issued a moment ago
works at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
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
CACHE_TTL_S = 5.0  # how long another process's revocation may go unseen
CACHE_MAX = 10_000  # tokens remembered at most; past it the cache starts again
_monotonic = time.monotonic  # the cache's clock (a test moves it on)
_Key = tuple[str, bytes]  # (the database's URL, the token's digest)
# Shared by every TokenStore of the process (the engine's and the API's), so a
# revocation through either forgets the token for both.
_remembered: dict[_Key, tuple[float, Principal]] = {}


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
        self._database = db.engine.url.render_as_string(hide_password=True)

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
        key = (self._database, wanted)
        hit = _remembered.get(key)
        if hit is not None and _monotonic() < hit[0]:
            return hit[1]

        async def work(conn: AsyncConnection) -> Principal | None:
            query = select(k.c.id, k.c.user_id, k.c.operator, k.c.token_hash).where(
                k.c.token_hash == wanted, k.c.revoked_at.is_(None)
            )
            row = (await conn.execute(query)).first()
            if row is None or not hmac.compare_digest(bytes(row.token_hash), wanted):
                return None
            return Principal(str(row.id), row.user_id, bool(row.operator))

        found = await self.db.transaction(work, write=False)
        if found is not None:
            if len(_remembered) >= CACHE_MAX:
                _remembered.clear()
            _remembered[key] = (_monotonic() + CACHE_TTL_S, found)
        return found

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

        revoked = await self.db.transaction(work)
        forget(token_id)
        return revoked


def forget(token_id: str) -> None:
    """Drop a token from this process's cache (it was revoked)."""
    for key in [key for key, (_, who) in _remembered.items() if who.token_id == token_id]:
        _remembered.pop(key, None)
