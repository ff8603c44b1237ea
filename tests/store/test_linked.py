"""Linked accounts (revision 0011) on both stores: secrets sealed per account, never in
the rows in clear; listed per user; an id linked once."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr
from sqlalchemy import text

from hmt.store.db import Database
from hmt.store.linked import AccountExists, LinkedAccount, LinkedAccounts
from hmt.store.sealing import Sealer

KEY, OTHER = "k" * 32, "o" * 32
CANARY_TOKEN = "CANARYlinkedtoken5e1"
CANARY_SECRET = "CANARYlinkedsecret9a"


def kite(account_id: str, user: str = "alice", token: str = CANARY_TOKEN) -> LinkedAccount:
    return LinkedAccount(
        account_id,
        user,
        "kite",
        f"{account_id} at Kite",
        f"key-{account_id}",
        SecretStr(CANARY_SECRET),
        SecretStr(token),
    )


async def test_link_list_open_and_no_plaintext(db: Database) -> None:
    linked = LinkedAccounts(db, Sealer([KEY]))
    await linked.link(kite("family-1"))
    await linked.link(kite("family-2", token="other-token-xyz"))
    await linked.link(kite("bobs", user="bob"))
    assert [a.id for a in await linked.mine("alice")] == ["family-1", "family-2"]
    assert (await linked.mine("alice"))[0].access_token is None  # listing opens nothing
    assert await linked.owned("alice", "bobs") is None  # another user's: unknown
    assert (await linked.owned("bob", "bobs")) is not None
    opened = {a.id: a for a in await linked.open_all()}
    token = opened["family-1"].access_token
    assert token is not None
    assert token.get_secret_value() == CANARY_TOKEN
    assert CANARY_TOKEN not in repr(opened["family-1"])
    async with db.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM hmt_accounts"))).all())
    assert "key-family-1" in dump
    assert CANARY_TOKEN not in dump
    assert CANARY_SECRET not in dump
    with pytest.raises(AccountExists, match="family-1"):
        await linked.link(kite("family-1", user="bob"))


async def test_a_sealed_token_copied_to_another_account_does_not_open(db: Database) -> None:
    linked = LinkedAccounts(db, Sealer([KEY]))
    await linked.link(kite("one"))
    await linked.link(kite("two", token="second-token-abc"))
    async with db.engine.begin() as conn:
        sealed = await conn.scalar(
            text("SELECT access_token_sealed FROM hmt_accounts WHERE id = 'one'")
        )
        await conn.execute(
            text("UPDATE hmt_accounts SET access_token_sealed = :s WHERE id = 'two'"),
            {"s": sealed},
        )
    with pytest.raises(InvalidTag):
        await linked.open_all()
    await linked.save_token("two", SecretStr("renewed-token-def"))
    opened = {a.id: a for a in await linked.open_all()}
    renewed = opened["two"].access_token
    assert renewed is not None
    assert renewed.get_secret_value() == "renewed-token-def"


async def test_reseal_all_moves_every_account_to_the_new_key(db: Database) -> None:
    """Sealed under key A, re-sealed with [B, A]: the accounts open with B alone."""
    await LinkedAccounts(db, Sealer([OTHER])).link(kite("one"))
    await LinkedAccounts(db, Sealer([OTHER])).link(kite("two", user="bob", token="two-token"))
    rotating = LinkedAccounts(db, Sealer([KEY, OTHER]))
    assert await rotating.reseal_all() == 4  # two accounts, two sealed values each
    assert await rotating.reseal_all() == 0  # safe to rerun
    opened = {x.id: x for x in await LinkedAccounts(db, Sealer([KEY])).open_all()}
    token, secret = opened["two"].access_token, opened["one"].api_secret
    assert token is not None
    assert token.get_secret_value() == "two-token"
    assert secret is not None
    assert secret.get_secret_value() == CANARY_SECRET


async def test_reseal_all_writes_nothing_if_a_value_does_not_open(db: Database) -> None:
    """A value neither key opens: `InvalidTag`, and no row was re-sealed."""
    await LinkedAccounts(db, Sealer([OTHER])).link(kite("one"))
    await LinkedAccounts(db, Sealer([OTHER])).link(kite("two"))
    async with db.engine.begin() as conn:  # "one"'s token copied to "two": bound to "one"
        sealed = await conn.scalar(
            text("SELECT access_token_sealed FROM hmt_accounts WHERE id = 'one'")
        )
        await conn.execute(
            text("UPDATE hmt_accounts SET access_token_sealed = :s WHERE id = 'two'"),
            {"s": sealed},
        )
    dump = "SELECT id, api_secret_sealed, access_token_sealed FROM hmt_accounts ORDER BY id"
    async with db.engine.connect() as conn:
        before = (await conn.execute(text(dump))).all()
    with pytest.raises(InvalidTag):  # "one" (re-sealed first, by id) is rolled back too
        await LinkedAccounts(db, Sealer([KEY, OTHER])).reseal_all()
    async with db.engine.connect() as conn:
        assert (await conn.execute(text(dump))).all() == before


async def test_open_one_account_for_its_login(db: Database) -> None:
    """`open` reads one row's secrets (a login's exchange); an unknown id is None."""
    linked = LinkedAccounts(db, Sealer([KEY]))
    await linked.link(kite("one"))
    await linked.link(kite("two", token="second-token-abc"))
    two = await linked.open("two")
    assert two is not None
    assert (two.id, two.api_key) == ("two", "key-two")
    assert two.access_token is not None
    assert two.access_token.get_secret_value() == "second-token-abc"
    assert two.api_secret is not None
    assert two.api_secret.get_secret_value() == CANARY_SECRET
    assert await linked.open("three") is None
    with pytest.raises(InvalidTag):
        await LinkedAccounts(db, Sealer([OTHER])).open("two")


async def test_an_unreadable_row_leaves_only_itself_out(db: Database) -> None:
    """One account sealed under another key: the others still open (the engine's start
    trades them), and the unreadable one is named, not guessed."""
    await LinkedAccounts(db, Sealer([KEY])).link(kite("one"))
    await LinkedAccounts(db, Sealer([OTHER])).link(kite("two", token="two-token"))
    await LinkedAccounts(db, Sealer([KEY])).link(kite("three", user="bob"))
    opened, unreadable = await LinkedAccounts(db, Sealer([KEY])).open_readable()
    assert [account.id for account in opened] == ["one", "three"]
    assert unreadable == ["two"]
    with pytest.raises(InvalidTag):
        await LinkedAccounts(db, Sealer([KEY])).open_all()
