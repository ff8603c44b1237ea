"""Engine control, as in the seed: health, stats, start, stop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hmt.api.auth import Caller, OperatorWriter
from hmt.api.runtime import Runtime
from hmt.api.schemas import Problem
from hmt.engine.health import Verdict

router = APIRouter(tags=["engine"])


@router.get("/health", summary="Engine health (public)")
async def health(runtime: Runtime) -> JSONResponse:
    verdict = runtime.health()
    code = 503 if verdict.verdict is Verdict.DOWN else 200
    return JSONResponse(
        {"status": verdict.verdict.value, "reasons": list(verdict.reasons)}, status_code=code
    )


@router.get("/stats", summary="Counters, connection state and latency percentiles")
async def stats(runtime: Runtime, _caller: Caller) -> dict[str, Any]:
    return runtime.stats()


OPERATOR_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Not an operator token"},
    429: {"model": Problem, "description": "Too many writes with this token (Retry-After)"},
}


@router.post(
    "/start", summary="Start the engine for every user (operator only)", responses=OPERATOR_ONLY
)
async def start(runtime: Runtime, _caller: OperatorWriter) -> dict[str, Any]:
    await runtime.engine.start()
    return {"state": runtime.engine.state.value}


@router.post(
    "/stop",
    summary="Stop the engine for every user, draining orders (operator only)",
    responses=OPERATOR_ONLY,
)
async def stop(runtime: Runtime, _caller: OperatorWriter) -> dict[str, Any]:
    await runtime.engine.stop()
    return {"state": runtime.engine.state.value}
