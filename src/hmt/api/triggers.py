"""Triggers: each caller sees and changes only their own (another's id is a 404)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from hmt.api.auth import Caller
from hmt.api.schemas import Problem, TriggerIn, TriggerOut
from hmt.core.lifecycle import Status
from hmt.core.rules import legs_holding
from hmt.core.types import TriggerId, UserId

router = APIRouter(prefix="/triggers", tags=["triggers"])
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such trigger of yours"}}
BAD_INPUT: Responses = {422: {"model": Problem, "description": "A field broke a rule"}}
CONFLICT: Responses = {409: {"model": Problem, "description": "Not possible in its status"}}
ALREADY_HOLDS = "its condition already holds at the last traded price: it fires on the next tick"
MAX_PAGE = 500


@router.post("", status_code=status.HTTP_201_CREATED, responses=BAD_INPUT)
async def create(body: TriggerIn, request: Request, caller: Caller) -> TriggerOut:
    """Store a trigger; it is armed in the engine before this returns."""
    runtime = request.app.state.runtime
    trigger = body.to_trigger(TriggerId(str(uuid.uuid4())), UserId(caller.user_id))
    record = await runtime.triggers.create(trigger)
    await runtime.engine.refresh(record.id)
    warnings = []
    last = runtime.engine.last_ltp.get(trigger.instrument_token)
    if trigger.status is Status.ACTIVE and last is not None and legs_holding(trigger, last):
        warnings.append(
            "its condition already holds at the last traded price: it fires on the next tick"
        )
    return TriggerOut.of(record, warnings=warnings)


@router.get("")
async def list_triggers(
    request: Request,
    caller: Caller,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    instrument_token: int | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TriggerOut]:
    """Your triggers, newest first, filtered by status and instrument."""
    records = await request.app.state.runtime.triggers.list(
        caller.user_id,
        status=status_,
        instrument_token=instrument_token,
        limit=limit,
        offset=offset,
    )
    return [TriggerOut.of(r) for r in records]


@router.get("/{trigger_id}", responses=NOT_FOUND)
async def get(trigger_id: str, request: Request, caller: Caller) -> TriggerOut:
    """One of your triggers, with its event history."""
    store = request.app.state.runtime.triggers
    record = await store.get(caller.user_id, trigger_id)
    return TriggerOut.of(record, events=await store.history(caller.user_id, trigger_id))


@router.delete("/{trigger_id}", responses={**NOT_FOUND, **CONFLICT})
async def cancel(trigger_id: str, request: Request, caller: Caller) -> TriggerOut:
    """Cancel one of your triggers; it is out of the engine before this returns."""
    runtime = request.app.state.runtime
    record = await runtime.triggers.cancel(caller.user_id, trigger_id)
    await runtime.engine.refresh(record.id)
    return TriggerOut.of(record)
