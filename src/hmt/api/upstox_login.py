"""The Upstox login: its OAuth2 authorization dialog, the callback, the code's exchange.

As /kite/login (`hmt.api.broker`), for a process trading on Upstox
(docs/upstox/FACTS.md 3). /upstox/login sends the browser to Upstox's dialog
with a one-time `state`; Upstox sends it back to HMT_UPSTOX_REDIRECT_URI (this
hmt's /upstox/callback) with a single-use `code` and that `state`. The
callback refuses a missing or wrong state before anything else: it must be one
this hmt issued in the last ten minutes, unused, and the browser's own (the
same value in a cookie set with the redirect), so a callback forged or replayed
from elsewhere cannot put another account's session in this hmt. The code is
then exchanged by the session's login (`UpstoxLogin`, with the client secret
only the server holds) and the session kept sealed, as Kite's.

These are browser navigations, which cannot carry a bearer token: what protects
them is the state, the redirect URI Upstox holds for the app and the secret.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse

from hmt.api.broker import ACCOUNT_STATE_COOKIE, LOGIN_TTL_S, PendingLogins, linked_landing
from hmt.api.problems import ApiError
from hmt.api.runtime import Runtime
from hmt.api.schemas import BrokerSessionOut, Problem
from hmt.config import BrokerApi, ConfigError, Settings
from hmt.core.broker import BrokerError
from hmt.logs import get_logger, register_secret

router = APIRouter(tags=["broker"])
log = get_logger("hmt.api.upstox_login")

STATE_COOKIE = "hmt_upstox_state"
CALLBACK = "/upstox/callback"
NOT_CONFIGURED = (
    "Upstox login needs HMT_BROKER=upstox (or paper with HMT_PAPER_BROKER=upstox), "
    "HMT_UPSTOX_CLIENT_ID, HMT_UPSTOX_CLIENT_SECRET, HMT_UPSTOX_REDIRECT_URI and HMT_SECRET_KEY"
)


def _configured(settings: Settings) -> None:
    """409 unless this process trades on Upstox with a login (the composition then built
    `UpstoxLogin`, and required HMT_SECRET_KEY to seal what it gives)."""
    if (
        settings.broker_api is not BrokerApi.UPSTOX
        or not settings.upstox_client_id
        or settings.upstox_client_secret is None
        or not settings.upstox_redirect_uri
    ):
        raise ApiError(
            status.HTTP_409_CONFLICT, NOT_CONFIGURED, field="server", rule="not_configured"
        )


def dialog_url(settings: Settings, state: str, client_id: str | None = None) -> str:
    """Upstox's authorization dialog for this app (FACTS 3), or for a linked account's
    `client_id`. Built here because the API names no Upstox module (import-linter);
    `hmt.upstox.session.login_url` builds the same, and the tests hold the two equal."""
    params = {
        "client_id": client_id or settings.upstox_client_id or "",
        "redirect_uri": settings.upstox_redirect_uri or "",
        "response_type": "code",
        "state": state,
    }
    base = settings.upstox_api_url.rstrip("/")
    return f"{base}/v2/login/authorization/dialog?{urlencode(params)}"


@router.get(
    "/upstox/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start an Upstox login (a browser redirect to Upstox's authorization dialog)",
    responses={
        302: {"description": "To Upstox's authorization dialog, with a one-time state"},
        409: {"model": Problem, "description": "Upstox login is not configured"},
    },
)
async def upstox_login(request: Request, runtime: Runtime) -> RedirectResponse:
    settings = runtime.settings
    _configured(settings)
    state = request.app.state.upstox_logins.new()
    response = RedirectResponse(dialog_url(settings, state), status.HTTP_302_FOUND)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(LOGIN_TTL_S),
        httponly=True,
        samesite="lax",  # sent on Upstox's top-level redirect back here
        path=CALLBACK,
    )
    return response


@router.get(
    CALLBACK,
    response_model=BrokerSessionOut,
    summary="Where Upstox sends the browser back: checks the state, exchanges the code",
    responses={
        403: {"model": Problem, "description": "A missing or wrong state: not started here"},
        409: {"model": Problem, "description": "Upstox login is not configured"},
        502: {"model": Problem, "description": "Upstox refused the code"},
    },
)
async def upstox_callback(
    request: Request,
    runtime: Runtime,
    code: Annotated[str, Query(min_length=1, max_length=256)],
    state: Annotated[str | None, Query(max_length=256)] = None,
    started: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
    account_started: Annotated[str | None, Cookie(alias=ACCOUNT_STATE_COOKIE)] = None,
) -> Any:
    register_secret(code)  # before anything can log the URL it came in
    account = PendingLogins.account_of(state)
    if account is not None and state is not None:  # GET /accounts/{id}/login started it
        return await linked_callback(request, runtime, code, account, state, account_started)
    _configured(runtime.settings)
    if not state:
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "the callback has no state, so it cannot be told from a forged one: "
            "open /upstox/login again",
            field="state",
            rule="login_state",
        )
    if state != started or not request.app.state.upstox_logins.take(state):
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "the state is not one this hmt gave this browser, was used already, or is over "
            "ten minutes old: open /upstox/login again",
            field="state",
            rule="login_state",
        )
    try:
        # The session's login exchange (`BrokerLogin`): on Upstox, `UpstoxLogin`.
        stored = await runtime.kite_login(code)
    except BrokerError as error:
        log.warning("upstox_login_failed", reason=error.message)
        return JSONResponse(
            {"detail": f"Upstox refused the login: {error.message}"},
            status_code=status.HTTP_502_BAD_GATEWAY,
        )
    response = JSONResponse(BrokerSessionOut(broker_session="set", stored=stored).model_dump())
    response.delete_cookie(STATE_COOKIE, path=CALLBACK)
    return response


async def linked_callback(
    request: Request, runtime: Runtime, code: str, account: str, state: str, started: str | None
) -> Any:
    """A linked Upstox account's login coming back: the state (query and cookie) must be
    the one this hmt issued for that account, unused, under ten minutes old, before the
    code is exchanged with that account's client id and secret, and its session uses
    the token (kept sealed in the account's row; where Upstox accounts are not traded
    here, a cluster node, only kept)."""
    if state != started or not request.app.state.upstox_logins.take(state, account):
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            f"this login of account {account!r} was not started here, was used already, "
            f"or took over ten minutes: open /accounts/{account}/login again",
            field="state",
            rule="login_state",
        )
    try:
        found = await runtime.account_login(account, code)
    except ConfigError as error:
        raise ApiError(
            status.HTTP_409_CONFLICT, str(error), field="server", rule="not_configured"
        ) from None
    except BrokerError as error:
        log.warning("account_login_failed", account=account, reason=error.message)
        return JSONResponse(
            {"detail": f"Upstox refused the login of account {account!r}: {error.message}"},
            status_code=status.HTTP_502_BAD_GATEWAY,
        )
    if not found:
        raise ApiError(404, "no such account", field="account", rule="not_found")
    return linked_landing(request, account, CALLBACK)
