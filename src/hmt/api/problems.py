"""Every error body is a `Problem`: `{"detail": ..., "errors": [{field, rule, message}]}`.

The handlers here turn hmt's exceptions and FastAPI's own into that shape, in
words a trader can act on; `errors` is never empty, so a client can always
show which part of its request (a field, the path, the token) was at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hmt.api.schemas import SERVER_OWNED
from hmt.config import ConfigError
from hmt.core.errors import IllegalTransition, InvalidTrigger
from hmt.store.triggers import TriggerNotFound


class ApiError(HTTPException):
    """An HTTP error that names the part of the request at fault and the rule it broke."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str,
        rule: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers=dict(headers) if headers else None)
        self.field = field
        self.rule = rule


class TooManyTriggers(Exception):
    """The request would take the caller past HMT_MAX_TRIGGERS_PER_USER live triggers."""


# What an HTTP error raised without a field (FastAPI's, Starlette's) is about.
_PLAIN: Mapping[int, tuple[str, str]] = {
    400: ("body", "json"),
    401: ("Authorization", "bearer_token"),
    403: ("Authorization", "forbidden"),
    404: ("path", "not_found"),
    405: ("method", "method_not_allowed"),
    409: ("server", "conflict"),
    413: ("body", "max_bytes"),
    429: ("Authorization", "rate_limit"),
    502: ("broker", "unavailable"),
}

# Starlette's own words for a path or method it has no route for.
_STARLETTE: Mapping[str, str] = {
    "Not Found": "no such page: /docs lists the API's routes",
    "Method Not Allowed": "this route does not take that method: /docs lists what it takes",
}

# How a trader would say each status, for the 409 of a change it does not allow.
_STATES: Mapping[str, str] = {
    "active": "this trigger is active",
    "paused": "this trigger is paused",
    "triggered": "this trigger has fired and its order is on its way to the broker",
    "placed": "this trigger is placed (its order is with the broker)",
    "failed": "this trigger has failed (its order was refused; error_message says why)",
    "cancelled": "this trigger is cancelled",
    "expired": "this trigger has expired (its expires_at has passed)",
}
_VERBS: Mapping[str, str] = {
    "updated": "edited",
    "paused": "paused",
    "resumed": "resumed",
    "cancelled": "cancelled",
}


def transition_message(status: str, event: str) -> str:
    """The 409's sentence for `event` refused in `status`, e.g. a placed trigger edited."""
    state = _STATES.get(status, f"this trigger is {status}")
    if event == status == "paused":
        return "this trigger is already paused"
    if event == "resumed" and status == "active":
        return "this trigger is active, not paused: only a paused trigger can be resumed"
    verb = _VERBS.get(event)
    if verb is None:
        return f"{state}: '{event}' is not possible now"
    return f"{state}: it can no longer be {verb}"


def problem(
    status_code: int,
    detail: str,
    errors: list[dict[str, str]],
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "errors": errors},
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error body the `Problem` shape."""
    app.add_exception_handler(InvalidTrigger, _invalid_trigger)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(TriggerNotFound, _not_found)
    app.add_exception_handler(IllegalTransition, _illegal_transition)
    app.add_exception_handler(TooManyTriggers, _too_many)
    app.add_exception_handler(ConfigError, _not_configured)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _invalid_trigger(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidTrigger)
    errors = [{"field": e.field, "rule": e.rule, "message": e.message} for e in error.errors]
    return problem(422, str(error), errors)


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = []
    for e in error.errors():
        field = _field_path(e["loc"])
        rule, message = e["type"], e["msg"]
        if rule == "json_invalid":  # its loc is a character position, not a field
            at = e["loc"][-1] if e["loc"] and isinstance(e["loc"][-1], int) else None
            field, message = "body", message + ("" if at is None else f" at character {at}")
        if rule == "extra_forbidden" and field.rsplit(".", 1)[-1] in SERVER_OWNED:
            rule, message = "read_only", "is set by hmt and cannot be written"
        errors.append({"field": field or "body", "rule": rule, "message": message})
    if errors and all(e["rule"] == "json_invalid" for e in errors):
        detail = "the body is not valid JSON: " + errors[0]["message"]
        return problem(400, detail, errors)
    detail = "; ".join(f"{e['field']}: {e['message']} [{e['rule']}]" for e in errors)
    return problem(422, detail, errors)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "triggers", 3, "quantity")` as `triggers[3].quantity`."""
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "cookie", "header") and not path:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


async def _not_found(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TriggerNotFound)
    message = "no trigger of yours has this id"
    return problem(
        404,
        f"trigger {error.trigger_id} not found: {message}",
        [{"field": "trigger_id", "rule": "not_found", "message": message}],
    )


async def _illegal_transition(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, IllegalTransition)
    message = transition_message(error.status, error.event)
    return problem(409, message, [{"field": "status", "rule": "lifecycle", "message": message}])


async def _too_many(_request: Request, error: Exception) -> JSONResponse:
    message = str(error)
    return problem(
        409, message, [{"field": "body", "rule": "max_triggers_per_user", "message": message}]
    )


async def _not_configured(_request: Request, error: Exception) -> JSONResponse:
    message = str(error)
    return problem(409, message, [{"field": "server", "rule": "configuration", "message": message}])


async def _http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    detail = str(error.detail)
    if isinstance(error, ApiError):
        field, rule = error.field, error.rule
    else:
        field, rule = _PLAIN.get(error.status_code, ("request", "http_" + str(error.status_code)))
    if error.status_code in (204, 304):  # no body allowed
        return Response(status_code=error.status_code, headers=error.headers)
    if not isinstance(error, ApiError):
        detail = _STARLETTE.get(detail, detail)
    return problem(
        error.status_code,
        detail,
        [{"field": field, "rule": rule, "message": detail}],
        headers=error.headers,
    )
