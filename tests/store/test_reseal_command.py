"""`hmt db reseal` on both stores: a key rotation from A to "B,A" re-seals every stored
secret (the default account's session, linked accounts, notification channels), after
which B alone opens everything; a value no key opens is a non-zero exit naming the
problem; no key or secret is ever printed or logged."""

from __future__ import annotations

import asyncio
import os

import pytest
import structlog
from pydantic import SecretStr
from typer.testing import CliRunner

from hmt.cli import app
from hmt.core.notices import NoticeKind
from hmt.logs import REDACTOR
from hmt.store.accounts import AccountStore
from hmt.store.channels import ChannelStore
from hmt.store.db import Database, create_engine
from hmt.store.linked import LinkedAccount, LinkedAccounts
from hmt.store.sealing import Sealer

KEY_A = "CANARYkeyA-0123456789abcdef"
KEY_B = "CANARYkeyB-0123456789abcdef"
KEY_C = "CANARYkeyC-0123456789abcdef"
TOKEN = "CANARYsessiontoken01"
SECRET = "CANARYapisecret02"
LINKED_TOKEN = "CANARYlinkedtoken03"
LINKED_SECRET = "CANARYlinkedsecret04"
HOOK = "json://hooks.example.com/CANARYhookkey05"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HMT_")]:
        monkeypatch.delenv(name)


async def _seed(url: str, key: str) -> None:
    db = Database(create_engine(url))
    try:
        sealer = Sealer([key])
        await AccountStore(db, sealer).save(
            "hmt-engine", api_key="kite-key", access_token=SecretStr(TOKEN),
            api_secret=SecretStr(SECRET),
        )  # fmt: skip
        await LinkedAccounts(db, sealer).link(
            LinkedAccount(
                "family-2", "alice", "kite", "second", "key-2",
                SecretStr(LINKED_SECRET), SecretStr(LINKED_TOKEN),
            )
        )  # fmt: skip
        await ChannelStore(db, sealer).add(
            "alice", name="hook", url=HOOK, url_hint="json://…", kinds=[NoticeKind.PLACED]
        )
    finally:
        await db.dispose()


async def _opened(url: str, keys: list[str]) -> list[str]:
    """Every stored secret opened with `keys` (InvalidTag if one does not open)."""
    db = Database(create_engine(url))
    try:
        sealer = Sealer(keys)
        session = await AccountStore(db, sealer).load("hmt-engine")
        assert session is not None
        assert session.access_token is not None
        assert session.api_secret is not None
        linked = (await LinkedAccounts(db, sealer).open_all())[0]
        assert linked.access_token is not None
        assert linked.api_secret is not None
        hooks = await ChannelStore(db, sealer).targets(None, NoticeKind.PLACED)
        return [
            session.access_token.get_secret_value(),
            session.api_secret.get_secret_value(),
            linked.access_token.get_secret_value(),
            linked.api_secret.get_secret_value(),
            *(h.url for h in hooks),
        ]
    finally:
        await db.dispose()


def _reseal(url: str, keys: str) -> tuple[int, str]:
    with structlog.testing.capture_logs() as logs:
        result = CliRunner().invoke(
            app, ["db", "reseal"], env={"HMT_DATABASE_URL": url, "HMT_SECRET_KEY": keys}
        )
    text = result.output + repr(logs)
    assert "CANARY" not in text  # no key, no token, no secret, no URL
    return result.exit_code, result.output


def test_rotation_from_a_to_b_then_b_alone_opens_everything(url: str) -> None:
    asyncio.run(_seed(url, KEY_A))
    code, output = _reseal(url, f"{KEY_B},{KEY_A}")
    assert code == 0, output
    assert "the default account's session (hmt_broker_accounts): 2 re-sealed" in output
    assert "linked accounts (hmt_accounts): 2 re-sealed" in output
    assert "notification channels (hmt_notify_channels): 1 re-sealed" in output
    plain = [TOKEN, SECRET, LINKED_TOKEN, LINKED_SECRET, HOOK]
    assert asyncio.run(_opened(url, [KEY_B])) == plain
    # Rerun (safe), and with B alone: nothing left to change.
    for keys in (f"{KEY_B}, {KEY_A}", KEY_B):
        code, output = _reseal(url, keys)
        assert code == 0, output
        assert output.count(": 0 re-sealed") == 3
    # The keys were registered with the log redactor.
    assert "CANARY" not in REDACTOR.scrub(f"{KEY_A} {KEY_B}")


def test_a_value_no_key_opens_is_a_non_zero_exit_and_writes_nothing(url: str) -> None:
    asyncio.run(_seed(url, KEY_A))
    code, output = _reseal(url, f"{KEY_B},{KEY_C}")
    assert code == 1
    assert "HMT_SECRET_KEY does not provide" in output
    assert "nothing re-sealed" in output
    assert "hmt db reseal" in output
    # Nothing moved: A still opens everything.
    assert asyncio.run(_opened(url, [KEY_A]))[0] == TOKEN


def test_reseal_without_a_key_or_with_a_bad_one_names_hmt_secret_key(url: str) -> None:
    result = CliRunner().invoke(app, ["db", "reseal"], env={"HMT_DATABASE_URL": url})
    assert result.exit_code == 2
    assert "HMT_SECRET_KEY is not set" in result.output
    code, output = _reseal(url, f"{KEY_B},CANARYshort")
    assert code == 2
    assert "HMT_SECRET_KEY" in output
    assert "key 2 of 2" in output
