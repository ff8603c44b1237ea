"""API tokens on both backends: shown once, stored hashed, revocable."""

from __future__ import annotations

import hashlib

from sqlalchemy import text

from hmt.store.db import Database
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
