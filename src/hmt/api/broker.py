"""The broker session: Kite's daily login, or an access token set directly.

/kite/login and /kite/callback are browser navigations (Kite redirects the
browser back), which cannot carry a bearer token. What protects them: Kite
issues a request token only to whoever logs in to this app's Kite account, the
exchange needs the API secret that only the server holds, and a one-time state
cookie binds the callback to the browser that started the login here.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from hmt.api.auth import OperatorWriter
from hmt.api.problems import ApiError
from hmt.api.runtime import Runtime
from hmt.api.schemas import BrokerSessionIn, BrokerSessionOut, Problem
from hmt.config import ConfigError
from hmt.core.broker import BrokerError
from hmt.kite.session import login_url
from hmt.logs import get_logger, register_secret

router = APIRouter(tags=["broker"])
log = get_logger("hmt.api.broker")

STATE_COOKIE = "hmt_kite_state"
# A linked account's login (GET /accounts/{id}/login): its own cookie, so that it and
# the default account's login can be open at once in one browser.
ACCOUNT_STATE_COOKIE = "hmt_account_state"
CALLBACK = "/kite/callback"
LOGIN_TTL_S = 600.0  # a login left unfinished for ten minutes must start again
MAX_PENDING = 64  # open logins kept; the oldest is dropped beyond this


class PendingLogins:
    """One-time login states, in memory: a restart only means logging in again.

    Each state is bound to the account it logs in (None: the default account), so a
    state issued for one account cannot complete another's login. A linked account's
    state starts with its id and a dot (`account_of`): Upstox passes back only the
    state, so the state itself names the account (ids hold no dot)."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[float, str | None]] = {}

    def new(self, account: str | None = None) -> str:
        now = time.monotonic()
        self._states = {k: v for k, v in self._states.items() if now - v[0] < LOGIN_TTL_S}
        while len(self._states) >= MAX_PENDING:
            self._states.pop(next(iter(self._states)))
        state = secrets.token_urlsafe(24)  # no dot in it
        if account is not None:
            state = f"{account}.{state}"
        self._states[state] = (now, account)
        return state

    @staticmethod
    def account_of(state: str | None) -> str | None:
        """The linked account a state names (None: the default account's login)."""
        if state is None or "." not in state:
            return None
        return state.partition(".")[0]

    def take(self, state: str | None, account: str | None = None) -> bool:
        """Whether `state` is an unused, fresh one issued for `account`; used up either way."""
        started = None if state is None else self._states.pop(state, None)
        return (
            started is not None
            and started[1] == account
            and time.monotonic() - started[0] < LOGIN_TTL_S
        )


@router.get(
    "/kite/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start a Kite login (a browser redirect to Kite)",
    responses={
        302: {"description": "To Kite's login page"},
        409: {"model": Problem, "description": "Kite login is not configured"},
    },
)
async def kite_login(request: Request, runtime: Runtime) -> RedirectResponse:
    settings = runtime.settings
    if not settings.kite_api_key or settings.kite_api_secret is None:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "Kite login needs HMT_KITE_API_KEY, HMT_KITE_API_SECRET and HMT_SECRET_KEY",
            field="server",
            rule="not_configured",
        )
    state = request.app.state.kite_logins.new()
    response = RedirectResponse(
        login_url(settings.kite_login_url, settings.kite_api_key), status.HTTP_302_FOUND
    )
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(LOGIN_TTL_S),
        httponly=True,
        samesite="lax",  # sent on Kite's top-level redirect back here, not on cross-site posts
        path="/kite/callback",
    )
    return response


@router.get(
    "/kite/callback",
    response_model=BrokerSessionOut,
    summary="Where Kite sends the browser back: exchanges the request token",
    responses={
        403: {"model": Problem, "description": "Not a login started here, or expired"},
        409: {"model": Problem, "description": "Kite login is not configured"},
        502: {"model": Problem, "description": "Kite refused the request token"},
    },
)
async def kite_callback(
    request: Request,
    runtime: Runtime,
    request_token: Annotated[str, Query(min_length=1, max_length=256)],
    state: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
    account: Annotated[str | None, Query(max_length=64)] = None,
    account_state: Annotated[str | None, Query(alias="state", max_length=256)] = None,
    account_started: Annotated[str | None, Cookie(alias=ACCOUNT_STATE_COOKIE)] = None,
) -> Any:
    register_secret(request_token)  # before anything can log the URL it came in
    if account is not None:  # Kite passed back the `redirect_params` of /accounts/{id}/login
        return await linked_callback(
            request, runtime, request_token, account, account_state, account_started
        )
    if runtime.settings.kite_api_secret is None:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "Kite login needs HMT_KITE_API_KEY, HMT_KITE_API_SECRET and HMT_SECRET_KEY",
            field="server",
            rule="not_configured",
        )
    if not request.app.state.kite_logins.take(state):
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "this login was not started here, or took over ten minutes: open /kite/login again",
            field=STATE_COOKIE,
            rule="login_state",
        )
    try:
        stored = await runtime.kite_login(request_token)
    except BrokerError as error:
        log.warning("kite_login_failed", reason=error.message)
        return JSONResponse(
            {"detail": f"Kite refused the login: {error.message}"},
            status_code=status.HTTP_502_BAD_GATEWAY,
        )
    response = JSONResponse(BrokerSessionOut(broker_session="set", stored=stored).model_dump())
    response.delete_cookie(STATE_COOKIE, path="/kite/callback")
    return response


async def linked_callback(
    request: Request,
    runtime: Runtime,
    request_token: str,
    account: str,
    state: str | None,
    started: str | None,
) -> Any:
    """A linked account's login coming back: the state must be the one this hmt gave
    this browser for this account (query and cookie), unused and under ten minutes old,
    checked before any exchange; then the token is exchanged with that account's key
    and secret and its session used as PUT /accounts/{id}/session does."""
    if not state or state != started or not request.app.state.kite_logins.take(state, account):
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            f"this login of account {account!r} was not started here, was used already, "
            f"or took over ten minutes: open /accounts/{account}/login again",
            field="state",
            rule="login_state",
        )
    try:
        found = await runtime.account_login(account, request_token)
    except ConfigError as error:
        raise ApiError(
            status.HTTP_409_CONFLICT, str(error), field="api_secret", rule="not_configured"
        ) from None
    except BrokerError as error:
        log.warning("account_login_failed", account=account, reason=error.message)
        return JSONResponse(
            {"detail": f"Kite refused the login of account {account!r}: {error.message}"},
            status_code=status.HTTP_502_BAD_GATEWAY,
        )
    if not found:  # unlinked since, or not traded by this engine
        raise ApiError(404, "no such account in this engine", field="account", rule="not_found")
    return linked_landing(request, account, CALLBACK)


ACCOUNTS_PAGE = "/ui/accounts"


def linked_landing(request: Request, account: str, callback: str) -> Response:
    """A linked account's login done. A browser (it asks for HTML: the broker's redirect
    was a navigation) goes back to the Accounts page, which shows the account's session
    valid and says the login worked (docs/ui.md); anything else gets the JSON answer."""
    if "text/html" in request.headers.get("accept", ""):
        page = f"{ACCOUNTS_PAGE}?{urlencode({'logged_in': account})}"
        response: Response = RedirectResponse(page, status.HTTP_303_SEE_OTHER)
    else:
        response = JSONResponse({"account": account, "broker_session": "set", "stored": True})
    response.delete_cookie(ACCOUNT_STATE_COOKIE, path=callback)
    return response


@router.put(
    "/broker/session",
    summary="Set the Kite access token directly (operator only)",
    responses={
        403: {"model": Problem, "description": "Not an operator token"},
        422: {"model": Problem, "description": "A field broke a rule"},
        429: {"model": Problem, "description": "Too many writes with this token"},
    },
)
async def set_session(
    body: BrokerSessionIn, runtime: Runtime, _caller: OperatorWriter
) -> BrokerSessionOut:
    """Used at once by orders and the ticker; stored sealed when HMT_SECRET_KEY is set."""
    token = body.access_token.get_secret_value()
    register_secret(token)
    stored = await runtime.use_access_token(token)
    return BrokerSessionOut(broker_session="set", stored=stored)
