"""The FastAPI application: routes, error shapes, and the runtime it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hmt import __version__
from hmt.api import (
    accounts,
    backtests,
    brackets,
    broker,
    channels,
    control,
    metrics,
    performance,
    problems,
    triggers,
    upstox_login,
)
from hmt.api.brackets import BracketIn
from hmt.api.broker import PendingLogins
from hmt.api.browser import browser_router
from hmt.api.legs import TriggerV2In, TriggerV2Patch
from hmt.api.limits import BodyLimit, ErrorShield, InFlightLimit, SecurityHeaders, WriteLimiter
from hmt.api.schemas import FieldProblem, Problem, TriggerIn, TriggerPatch
from hmt.api.triggers import TriggersIn
from hmt.engine.facade import Facade

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
    app.state.upstox_logins = PendingLogins()
    app.include_router(control.router)
    # The seed's paths, for drop-in use: the same routes with the same auth.
    app.include_router(control.router, prefix=SEED_PREFIX)
    app.include_router(triggers.router)
    app.include_router(brackets.router)
    app.include_router(browser_router)  # the web UI, its stream and instrument search
    app.include_router(metrics.router)
    app.include_router(performance.router)
    app.include_router(broker.router)
    app.include_router(upstox_login.router)
    app.include_router(backtests.router)
    app.include_router(channels.router)
    app.include_router(accounts.router)
    problems.install(app)  # every error body in the documented `Problem` shape
    # No CORS middleware: browsers refuse cross-origin reads (the UI is same-origin).
    app.add_middleware(
        BodyLimit,
        max_bytes=runtime.settings.max_body_bytes,
        larger={
            ("POST", "/triggers/bulk"): runtime.settings.max_bulk_body_bytes,
            ("POST", "/backtests"): runtime.settings.max_bulk_body_bytes,  # a CSV upload
        },
    )
    app.add_middleware(ErrorShield)  # no stack trace in any response
    # Past capacity, refuse at once (503 + Retry-After) rather than queue: docs/api.md.
    app.add_middleware(InFlightLimit, limit=runtime.settings.api_max_in_flight)
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
        # The trigger routes read their bodies themselves: the bulk create to name
        # every bad item at once, create and edit to tell a v1 body from a v2 one.
        for model in (
            TriggersIn, TriggerIn, TriggerV2In, TriggerPatch, TriggerV2Patch, BracketIn
        ):  # fmt: skip
            defined = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in defined.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, defined)
        ref = "#/components/schemas/{}".format
        # v1 and v2 bodies never both fit (v2 needs `legs`, v1 forbids it): oneOf.
        components["TriggerCreate"] = {
            "oneOf": [{"$ref": ref("TriggerIn")}, {"$ref": ref("TriggerV2In")}],
            "description": "A v1 trigger (DESIGN section 2) or a v2 one (with `legs`)",
        }
        # `{}` or `{"expires_at": ...}` fit both edits: anyOf.
        components["TriggerEdit"] = {
            "anyOf": [{"$ref": ref("TriggerPatch")}, {"$ref": ref("TriggerV2Patch")}],
            "description": "v1 fields, or v2 fields (`legs`, `watch`, `not_before`, `on_gap`)",
        }
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
