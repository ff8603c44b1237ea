"""Broker accounts on both backends: secrets sealed in the rows, opened only for their user."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr
from sqlalchemy import text, update

from hmt.store.accounts import AccountStore
from hmt.store.db import Database
from hmt.store.sealing import Sealer
from hmt.store.tables import broker_accounts

KEY, OTHER = "k" * 32, "o" * 32
CANARY_TOKEN = "CANARYaccess9f3b2c"
CANARY_SECRET = "CANARYsecret77e1d0"


async def raw_dump(db: Database) -> str:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM hmt_broker_accounts"))).all()
    return repr(rows)


async def test_save_load_and_no_plaintext_in_rows(db: Database) -> None:
    """Saved credentials load back, and the raw rows hold no plaintext token or secret."""
    accounts = AccountStore(db, Sealer([KEY]))
    await accounts.save(
        "alice",
        api_key="kitekey",
        access_token=SecretStr(CANARY_TOKEN),
        api_secret=SecretStr(CANARY_SECRET),
    )
    account = await accounts.load("alice")
    assert account is not None
    assert account.access_token is not None
    assert account.access_token.get_secret_value() == CANARY_TOKEN
    assert account.api_secret is not None
    assert account.api_secret.get_secret_value() == CANARY_SECRET
    assert CANARY_TOKEN not in repr(account)
    dump = await raw_dump(db)
    assert "kitekey" in dump
    assert CANARY_TOKEN not in dump
    assert CANARY_SECRET not in dump
    assert await accounts.load("bob") is None


async def test_swapped_row_and_wrong_key_fail(db: Database) -> None:
    """Alice's sealed token copied into Bob's row, or read with another key: InvalidTag."""
    accounts = AccountStore(db, Sealer([KEY]))
    await accounts.save("alice", api_key="a", access_token=SecretStr("alice-token"))
    await accounts.save("bob", api_key="b", access_token=SecretStr("bob-token"))
    async with db.engine.begin() as conn:
        sealed = (
            await conn.execute(
                text("SELECT access_token_sealed FROM hmt_broker_accounts WHERE user_id = 'alice'")
            )
        ).scalar_one()
        await conn.execute(
            update(broker_accounts)
            .where(broker_accounts.c.user_id == "bob")
            .values(access_token_sealed=sealed)
        )
    with pytest.raises(InvalidTag):
        await accounts.load("bob")
    with pytest.raises(InvalidTag):
        await AccountStore(db, Sealer([OTHER])).load("alice")


async def test_reseal_all_rotates_the_key(db: Database) -> None:
    """After rotation every sealed column is rewritten under the new key and still opens."""
    await AccountStore(db, Sealer([OTHER])).save(
        "alice", api_key="a", access_token=SecretStr("t"), api_secret=SecretStr("s")
    )
    rotating = AccountStore(db, Sealer([KEY, OTHER]))
    assert await rotating.reseal_all() == 2
    assert await rotating.reseal_all() == 0
    account = await AccountStore(db, Sealer([KEY])).load("alice")
    assert account is not None
    assert account.api_secret is not None
    assert account.api_secret.get_secret_value() == "s"
