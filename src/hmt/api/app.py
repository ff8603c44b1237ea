"""The FastAPI application: routes, error shapes, and the runtime it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from hmt import __version__
from hmt.api import broker, control, metrics, triggers
from hmt.api.broker import PendingLogins
from hmt.api.browser import browser_router
from hmt.api.limits import BodyLimit, ErrorShield, SecurityHeaders, WriteLimiter
from hmt.api.schemas import SERVER_OWNED, FieldProblem, Problem
from hmt.api.triggers import TooManyTriggers
from hmt.config import ConfigError
from hmt.core.errors import IllegalTransition, InvalidTrigger
from hmt.engine.facade import Facade
from hmt.store.triggers import TriggerNotFound

SEED_PREFIX = "/hmt-trigger-engine"


def create_app(runtime: Facade, *, manage_runtime: bool = True) -> FastAPI:
    """The API over `runtime`; with `manage_runtime` it starts and closes it too."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.close()

    app = FastAPI(title="hmt", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.write_limiter = WriteLimiter(runtime.settings.rate_limit_writes_per_min)
    app.state.kite_logins = PendingLogins()
    app.include_router(control.router)
    # The seed's paths, for drop-in use: the same routes with the same auth.
    app.include_router(control.router, prefix=SEED_PREFIX)
    app.include_router(triggers.router)
    app.include_router(browser_router)  # the web UI, its stream and instrument search
    app.include_router(metrics.router)
    app.include_router(broker.router)
    app.add_exception_handler(InvalidTrigger, _invalid_trigger)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(TriggerNotFound, _not_found)
    app.add_exception_handler(IllegalTransition, _conflict)
    app.add_exception_handler(TooManyTriggers, _conflict)
    app.add_exception_handler(ConfigError, _conflict)
    # No CORS middleware: browsers refuse cross-origin reads (the UI is same-origin).
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(ErrorShield)  # no stack trace in any response
    app.add_middleware(SecurityHeaders)  # outermost: on every response, errors included
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every 422 described as the `Problem` the handlers return."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault(
            "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        components.setdefault("FieldProblem", FieldProblem.model_json_schema())
        problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = problem
                if "requestBody" in operation:
                    responses.setdefault(
                        "400", {"description": "The body is not JSON", "content": problem}
                    )
                    responses.setdefault(
                        "413", {"description": "Over HMT_MAX_BODY_BYTES", "content": problem}
                    )
                if operation.get("security"):  # every route that reads a bearer token
                    responses.setdefault(
                        "401", {"description": "No valid bearer token", "content": problem}
                    )
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


async def _invalid_trigger(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidTrigger)
    errors = [{"field": e.field, "rule": e.rule, "message": e.message} for e in error.errors]
    return JSONResponse({"detail": str(error), "errors": errors}, status_code=422)


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path", "cookie"))
        rule, message = e["type"], e["msg"]
        if rule == "extra_forbidden" and field in SERVER_OWNED:
            rule, message = "read_only", "is set by hmt and cannot be written"
        errors.append({"field": field or "body", "rule": rule, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']} [{e['rule']}]" for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def _not_found(_request: Request, _error: Exception) -> JSONResponse:
    return JSONResponse({"detail": "trigger not found"}, status_code=404)


async def _conflict(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=409)
