"""Bearer tokens: who is calling, and whether they may act for every user."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hmt.api.problems import ApiError
from hmt.api.runtime import runtime_of
from hmt.logs import register_secret
from hmt.store.tokens import Principal

_bearer = HTTPBearer(auto_error=False, description="A token from `hmt token create`.")


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, or 401: a missing, malformed, unknown or revoked token all look the same."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        found = await runtime_of(request).tokens.authenticate(credentials.credentials)
        if found is not None:
            register_secret(credentials.credentials)  # from now on never in a log line
            return found
    raise ApiError(
        status.HTTP_401_UNAUTHORIZED,
        "a valid API token is required: send `Authorization: Bearer <token>` "
        "with a token from `hmt token create`",
        field="Authorization",
        rule="bearer_token",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def operator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller if their token is an operator's (start and stop act for every user)."""
    if not caller.operator:
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "this needs an operator token (`hmt token create --operator`)",
            field="Authorization",
            rule="operator",
        )
    return caller


def _limited(request: Request, caller: Principal) -> Principal:
    wait = request.app.state.write_limiter.take(caller.token_id)
    if wait is not None:
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many writes with this token: retry after the Retry-After seconds "
            "(HMT_RATE_LIMIT_WRITES_PER_MIN)",
            field="Authorization",
            rule="rate_limit",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return caller


async def writer(request: Request, caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, if their token has a write left in its rate limit (else 429)."""
    return _limited(request, caller)


async def operator_writer(
    request: Request, caller: Annotated[Principal, Depends(operator)]
) -> Principal:
    return _limited(request, caller)


async def scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Anyone when HMT_METRICS_PUBLIC is set; otherwise an operator token."""
    if runtime_of(request).settings.metrics_public:
        return
    await operator(await principal(request, credentials))


Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
Writer = Annotated[Principal, Depends(writer)]
OperatorWriter = Annotated[Principal, Depends(operator_writer)]
