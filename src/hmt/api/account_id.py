"""A trigger's `account` as v1 and v2 bodies send it (docs/accounts.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hmt.engine.accounts import DEFAULT_ACCOUNT

# A linked account's id (docs/accounts.md); "default" names the settings' account.
ACCOUNT_ID = r"^[a-z0-9][a-z0-9-]{0,31}$"
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID)]


def stored_account(sent: str | None) -> str | None:
    """A sent account as `Trigger.account` holds it: the default account's (null or
    "default") as None, its NULL."""
    return None if sent == DEFAULT_ACCOUNT else sent
