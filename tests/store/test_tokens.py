"""API tokens on both backends: shown once, stored hashed, revocable."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection

import hmt.store.tokens as tokens_module
from hmt.store.db import Database
from hmt.store.tables import api_tokens
from hmt.store.tokens import Principal, TokenStore


async def test_issue_authenticate_revoke(db: Database) -> None:
    """A token authenticates as its user until revoked; unknown and malformed ones do not."""
    tokens = TokenStore(db)
    issued = await tokens.issue("alice")
    operator = await tokens.issue("ops", operator=True, name="laptop")
    assert await tokens.authenticate(issued.token) == Principal(issued.token_id, "alice", False)
    assert await tokens.authenticate(operator.token) == Principal(operator.token_id, "ops", True)
    for bad in ("", "hmt_", issued.token + "x", issued.token[:-1], "Bearer " + issued.token):
        assert await tokens.authenticate(bad) is None
    assert await tokens.revoke(issued.token_id)
    assert not await tokens.revoke(issued.token_id)
    assert not await tokens.revoke("not-an-id")
    assert await tokens.authenticate(issued.token) is None
    assert await tokens.authenticate(operator.token) is not None
    assert issued.token not in repr(issued)


async def test_database_holds_only_hashes(db: Database) -> None:
    """The raw rows hold the SHA-256 of the token, never the token itself."""
    issued = await TokenStore(db).issue("alice")
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM hmt_api_tokens"))).all()
    dump = repr(rows)
    assert issued.token not in dump
    assert issued.token.removeprefix("hmt_") not in dump
    assert bytes(rows[0].token_hash) == hashlib.sha256(issued.token.encode()).digest()


async def test_a_revocation_in_this_process_is_seen_at_once_by_every_store(db: Database) -> None:
    """The API's store and the engine's are two `TokenStore`s: a token remembered by one
    and revoked through the other is refused by both at once."""
    api, engine = TokenStore(db), TokenStore(db)
    issued = await engine.issue("alice")
    assert await api.authenticate(issued.token) is not None  # now remembered
    assert await engine.revoke(issued.token_id)
    assert await api.authenticate(issued.token) is None
    assert await engine.authenticate(issued.token) is None


async def test_a_revocation_from_another_process_is_seen_once_the_cache_entry_expires(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoked by another process (`hmt token revoke`: the row changed, this cache not told),
    a remembered token still works until its entry's CACHE_TTL_S ends, and not after."""
    tokens = TokenStore(db)
    issued = await tokens.issue("alice")
    assert await tokens.authenticate(issued.token) is not None

    async def revoke_elsewhere(conn: AsyncConnection) -> None:
        await conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == issued.token_id)
            .values(revoked_at=datetime.now(UTC))
        )

    await db.transaction(revoke_elsewhere)
    assert await tokens.authenticate(issued.token) is not None  # within its TTL
    later = time.monotonic() + tokens_module.CACHE_TTL_S + 1
    monkeypatch.setattr(tokens_module, "_monotonic", lambda: later)
    assert await tokens.authenticate(issued.token) is None
    fresh = await tokens.issue("bob")  # an unknown token is never remembered: a new one works
    assert await tokens.authenticate(fresh.token) is not None
