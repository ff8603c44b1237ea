"""Bearer tokens: who is calling, and whether they may act for every user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hmt.store.tokens import Principal

_bearer = HTTPBearer(auto_error=False, description="A token from `hmt token create`.")


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, or 401: a missing, malformed, unknown or revoked token all look the same."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        found: Principal | None = await request.app.state.runtime.tokens.authenticate(
            credentials.credentials
        )
        if found is not None:
            return found
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def operator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller if their token is an operator's (start and stop act for every user)."""
    if not caller.operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an operator token")
    return caller


Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
