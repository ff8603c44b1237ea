"""Broker accounts: list yours with each one's session state, link a new one, and
unlink one (docs/accounts.md).

An account's secrets (API secret, access token) are accepted once, sealed at
rest and never returned or logged. The default account (the settings' one,
`default`) is listed for every user: it is the one a trigger without an
account trades through.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from hmt.api.account_id import ACCOUNT_ID
from hmt.api.auth import Caller, Writer
from hmt.api.broker import ACCOUNT_STATE_COOKIE, CALLBACK, LOGIN_TTL_S
from hmt.api.problems import ApiError
from hmt.api.runtime import Runtime
from hmt.api.schemas import BrokerSessionIn, Problem
from hmt.api.upstox_login import CALLBACK as UPSTOX_CALLBACK
from hmt.api.upstox_login import dialog_url
from hmt.config import ConfigError
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.engine.accounts import DEFAULT_ACCOUNT, UnlinkRefused
from hmt.engine.facade import Facade
from hmt.kite.session import login_url
from hmt.logs import register_secret
from hmt.store.linked import AccountExists, AccountInUse, LinkedAccount, LinkedAccounts

router = APIRouter(prefix="/accounts", tags=["accounts"])

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
# Not running in this process (another broker's account, or none yet): no state known.
UNKNOWN = "unknown"


def _secret_chars(value: SecretStr | None) -> SecretStr | None:
    # They go into HTTP headers and the ticker's URL: the brokers' are plain characters.
    if value is not None and not _TOKEN_CHARS.fullmatch(value.get_secret_value()):
        raise PydanticCustomError(
            "string_pattern_mismatch", "must be letters, digits or . _ ~ - only"
        )
    return value


class AccountIn(BaseModel):
    """A broker account to link: its credentials are sealed at rest."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=ACCOUNT_ID)]
    broker: Literal["kite", "upstox"]
    label: Annotated[str, Field(min_length=1, max_length=64)]
    api_key: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~-]+$")]
    api_secret: Annotated[SecretStr, Field(min_length=1, max_length=128)] | None = None
    access_token: Annotated[SecretStr, Field(min_length=6, max_length=256)] | None = None

    @field_validator("id")
    @classmethod
    def _not_default(cls, value: str) -> str:
        if value == DEFAULT_ACCOUNT:
            raise PydanticCustomError("reserved", "'default' names the settings' account")
        return value

    @field_validator("api_secret", "access_token")
    @classmethod
    def _chars(cls, value: SecretStr | None) -> SecretStr | None:
        return _secret_chars(value)


class AccountOut(BaseModel):
    id: str
    broker: str
    label: str
    session: str  # valid | expired | awaiting_login | unknown
    reason: str = ""  # why the session is not valid


def _out(runtime: Facade, account_id: str, broker: str, label: str) -> AccountOut:
    state, reason = runtime.account_sessions().get(account_id, (UNKNOWN, ""))
    return AccountOut(id=account_id, broker=broker, label=label, session=state, reason=reason)


# An account as listed: (id, broker, label); its session state is read when shown.
Listed = tuple[str, str, str]


async def listed_accounts(runtime: Facade, user_id: str) -> list[Listed]:
    """The default account, then the user's linked ones (one read of the store)."""
    broker = runtime.settings.broker_api.value
    mine = await LinkedAccounts(runtime.db, None).mine(user_id)
    return [
        (DEFAULT_ACCOUNT, broker, "the settings' account"),
        *((a.id, a.broker, a.label) for a in mine),
    ]


def with_sessions(runtime: Facade, listed: list[Listed]) -> list[AccountOut]:
    """Each listed account with its session's state in this engine now (no I/O: the live
    stream calls this every second)."""
    return [_out(runtime, *account) for account in listed]


@router.get("")
async def list_accounts(runtime: Runtime, caller: Caller) -> list[AccountOut]:
    """The default account, then yours, each with its session's state in this engine."""
    return with_sessions(runtime, await listed_accounts(runtime, caller.user_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"model": Problem, "description": "A field broke a rule"},
        409: {"model": Problem, "description": "The id is taken, or HMT_SECRET_KEY is not set"},
    },
)
async def link_account(body: AccountIn, runtime: Runtime, caller: Writer) -> AccountOut:
    """Link a broker account; the engine trades through it at once (its own order port,
    throttle and session). Its secrets are sealed and never shown again."""
    for secret in (body.api_secret, body.access_token):
        if secret is not None:
            register_secret(secret.get_secret_value())
    account = LinkedAccount(
        body.id,
        caller.user_id,
        body.broker,
        body.label,
        body.api_key,
        body.api_secret,
        body.access_token,
    )
    try:
        await runtime.link_account(account)
    except AccountExists as error:
        raise ApiError(409, str(error), field="id", rule="taken") from None
    except ConfigError as error:
        raise ApiError(409, str(error), field="server", rule="not_configured") from None
    return _out(runtime, account.id, account.broker, account.label)


@router.delete(
    "/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"model": Problem, "description": "No such account of yours"},
        409: {
            "model": Problem,
            "description": "The default account, an account with triggers still active, "
            "paused or triggered, or the Upstox account the shared feed runs on while "
            "other Upstox accounts are traded",
        },
    },
)
async def unlink_account(account_id: str, runtime: Runtime, caller: Writer) -> Response:
    """Unlink one of your accounts: the engine stops trading through it, then its row and
    sealed secrets are deleted. Refused while any trigger of it is active, paused or
    triggered (cancel or move them first); its finished triggers keep its id."""
    if account_id == DEFAULT_ACCOUNT:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "the default account is the settings' (HMT_KITE_*/HMT_UPSTOX_*): it cannot be unlinked",
            field="account_id",
            rule="default_account",
        )
    account = await LinkedAccounts(runtime.db, None).owned(caller.user_id, account_id)
    if account is None:
        raise ApiError(404, "no such account", field="account_id", rule="not_found")
    try:
        unlinked = await runtime.unlink_account(account_id)
    except AccountInUse as error:
        raise ApiError(
            status.HTTP_409_CONFLICT, str(error), field="account_id", rule="in_use"
        ) from None
    except UnlinkRefused as error:
        raise ApiError(
            status.HTTP_409_CONFLICT, str(error), field="account_id", rule=error.rule
        ) from None
    if not unlinked:  # gone meanwhile (another request unlinked it)
        raise ApiError(404, "no such account", field="account_id", rule="not_found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{account_id}/session",
    responses={
        404: {"model": Problem, "description": "No such account of yours in this engine"},
        422: {"model": Problem, "description": "A field broke a rule"},
    },
)
async def set_account_session(
    account_id: str, body: BrokerSessionIn, runtime: Runtime, caller: Writer
) -> AccountOut:
    """A linked account's access token for the day (obtained elsewhere): kept sealed; the
    engine reads that account's order book, then its paused triggers are armed again."""
    register_secret(body.access_token.get_secret_value())
    account = await LinkedAccounts(runtime.db, None).owned(caller.user_id, account_id)
    if account is None or not await runtime.use_account_token(
        account_id, body.access_token.get_secret_value()
    ):
        raise ApiError(404, "no such account", field="account_id", rule="not_found")
    return _out(runtime, account.id, account.broker, account.label)


@router.get(
    "/{account_id}/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start a linked account's daily login (a redirect to its broker's login page)",
    responses={
        200: {"description": "With `Accept: application/json`: `{login_url}` to navigate to"},
        302: {"description": "To the broker's login page for this account's app"},
        404: {"model": Problem, "description": "No such account of yours"},
        409: {
            "model": Problem,
            "description": "This engine cannot log this account in, or it has no API secret",
        },
    },
)
async def start_account_login(
    account_id: str, request: Request, runtime: Runtime, caller: Caller
) -> Response:
    """Kite's login page for the account's app, naming the account in `redirect_params`
    with a one-time state (also set in a cookie): the app's redirect URL must be this
    hmt's /kite/callback, which exchanges the request token with this account's key and
    secret. An Upstox account: Upstox's dialog for its client id, the state naming
    it, back to /upstox/callback. A page
    that holds its token in a header asks with `Accept: application/json` and
    navigates to the `login_url` it is given."""
    store = LinkedAccounts(runtime.db, None)
    account = await store.owned(caller.user_id, account_id)
    if account is None:
        raise ApiError(404, "no such account", field="account_id", rule="not_found")
    settings = runtime.settings
    upstox = account.broker == "upstox"
    if upstox and not settings.upstox_redirect_uri:
        # Upstox passes back only `state`: it names the account (docs/accounts.md).
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "an Upstox account's login needs HMT_UPSTOX_REDIRECT_URI (this hmt's "
            "/upstox/callback, registered for the account's app)",
            field="server",
            rule="not_configured",
        )
    if not upstox and account_id not in runtime.account_sessions():
        raise ApiError(
            status.HTTP_409_CONFLICT,
            f"this engine does not trade account {account_id!r} ({account.broker}): set its "
            f"token with PUT /accounts/{account_id}/session",
            field="account_id",
            rule="not_wired",
        )
    if not await store.has_api_secret(account_id):
        # Said now, not after the trader has logged in at the broker: the callback's
        # exchange needs the secret.
        raise ApiError(
            status.HTTP_409_CONFLICT,
            f"account {account_id!r} has no API secret linked: its login cannot be "
            f"exchanged (link it with api_secret, or set its token with "
            f"PUT /accounts/{account_id}/session)",
            field="api_secret",
            rule="not_configured",
        )
    if upstox:
        state = request.app.state.upstox_logins.new(account_id)  # the state names it
        url, callback = dialog_url(settings, state, account.api_key), UPSTOX_CALLBACK
    else:
        state = request.app.state.kite_logins.new(account_id)
        params = urlencode({"account": account_id, "state": state})
        url = login_url(settings.kite_login_url, account.api_key, redirect_params=params)
        callback = CALLBACK
    wants_json = "application/json" in request.headers.get("accept", "")
    response: Response = (
        JSONResponse({"login_url": url})
        if wants_json
        else RedirectResponse(url, status.HTTP_302_FOUND)
    )
    response.set_cookie(
        ACCOUNT_STATE_COOKIE,
        state,
        max_age=int(LOGIN_TTL_S),
        httponly=True,
        samesite="lax",  # sent on the broker's top-level redirect back here
        path=callback,
    )
    return response


async def check_account(
    runtime: Facade, user_id: str, account_id: str | None, tokens: Collection[int] = ()
) -> None:
    """A trigger's account must be the default one or one the user linked at a broker this
    engine trades, and `tokens` (its instruments) that broker's; else `InvalidTrigger`
    naming it (a 422)."""
    broker = await _broker_of_account(runtime, user_id, account_id)
    if account_id is not None and broker not in runtime.brokers:
        own = runtime.settings.broker_api.value
        if broker == own:
            message = f"linked {broker} accounts are not traded yet (docs/accounts.md)"
            raise InvalidTrigger([FieldError("account", "not_wired", message)])
        message = (
            f"account {account_id!r} is at {broker}; this engine trades "
            f"{' and '.join(sorted(runtime.brokers))}"
        )
        if broker == "upstox":
            message += (
                " (a Kite engine trades linked Upstox accounts outside a cluster, and in "
                "paper mode only with HMT_UPSTOX_API_URL on `hmt sim --broker upstox`)"
            )
        raise InvalidTrigger([FieldError("account", "other_broker", message)])
    _check_instruments(runtime, account_id, broker, tokens)


async def check_kept_account(
    runtime: Facade, user_id: str, account_id: str | None, tokens: Collection[int]
) -> None:
    """An edit that keeps the trigger's account: its instruments must still be that
    account's broker's (the account itself is not checked again)."""
    broker = await _broker_of_account(runtime, user_id, account_id)
    _check_instruments(runtime, account_id, broker, tokens)


async def _broker_of_account(runtime: Facade, user_id: str, account_id: str | None) -> str:
    if account_id is None:
        return runtime.settings.broker_api.value
    account = await LinkedAccounts(runtime.db, None).owned(user_id, account_id)
    if account is None:
        raise InvalidTrigger(
            [FieldError("account", "unknown_account", f"no account {account_id!r} is linked")]
        )
    return account.broker


def _check_instruments(
    runtime: Facade, account_id: str | None, broker: str, tokens: Collection[int]
) -> None:
    """Each instrument is named by the account's broker: its order goes there."""
    errors = [
        FieldError(
            "account",
            "instrument_broker",
            f"instrument {token} is {runtime.broker_of(token)}'s, but account "
            f"{account_id or DEFAULT_ACCOUNT!r} trades at {broker}: choose an account at "
            f"{runtime.broker_of(token)}, or that broker's instrument",
        )
        for token in sorted(set(tokens))
        if runtime.broker_of(token) != broker
    ]
    if errors:
        raise InvalidTrigger(errors)
