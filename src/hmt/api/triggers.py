"""Triggers: each caller sees and changes only their own (another's id is a 404)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from hmt.api.auth import Caller, Writer
from hmt.api.runtime import runtime_of
from hmt.api.schemas import Problem, TriggerIn, TriggerOut, TriggerPatch
from hmt.core.lifecycle import Status
from hmt.core.rules import legs_holding
from hmt.core.types import InstrumentToken, TriggerId, UserId
from hmt.engine.facade import Facade
from hmt.store.counts import triggers_by_status
from hmt.store.records import TriggerRecord

router = APIRouter(prefix="/triggers", tags=["triggers"])
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such trigger of yours"}}
BAD_INPUT: Responses = {422: {"model": Problem, "description": "A field broke a rule"}}
CONFLICT: Responses = {409: {"model": Problem, "description": "Not possible in its status"}}
LIMITED: Responses = {
    429: {"model": Problem, "description": "Too many writes with this token (Retry-After)"}
}
LIVE = (Status.ACTIVE.value, Status.PAUSED.value)
ALREADY_HOLDS = "its condition already holds at the last traded price: it fires on the next tick"
MAX_PAGE = 500


class TooManyTriggers(Exception):
    """The caller already has HMT_MAX_TRIGGERS_PER_USER active or paused triggers."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_INPUT,
        **LIMITED,
        409: {"model": Problem, "description": "At HMT_MAX_TRIGGERS_PER_USER live triggers"},
    },
)
async def create(body: TriggerIn, request: Request, caller: Writer) -> TriggerOut:
    """Store a trigger; it is armed in the engine before this returns."""
    runtime = runtime_of(request)
    # A soft cap: two creates racing at the limit may both pass, which is harmless.
    counts = await triggers_by_status(runtime.db, caller.user_id)
    limit = runtime.settings.max_triggers_per_user
    if sum(counts.get(s, 0) for s in LIVE) >= limit:
        raise TooManyTriggers(
            f"you have {limit} active or paused triggers, the most allowed "
            "(HMT_MAX_TRIGGERS_PER_USER): cancel some first"
        )
    listed = await runtime.instruments.resolve(
        InstrumentToken(body.instrument_token), body.exchange, body.tradingsymbol
    )
    trigger_id, divisor = TriggerId(str(uuid.uuid4())), listed.instrument.price_divisor
    trigger = body.to_trigger(trigger_id, UserId(caller.user_id), divisor=divisor)
    record = await runtime.triggers.create(trigger, instrument=listed.instrument)
    await runtime.engine.refresh(record.id)
    warnings = [] if listed.warning is None else [listed.warning]
    last = runtime.engine.last_ltp.get(trigger.instrument_token)
    if trigger.status is Status.ACTIVE and last is not None and legs_holding(trigger, last):
        warnings.append(ALREADY_HOLDS)
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
    records = await runtime_of(request).triggers.list(
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
    store = runtime_of(request).triggers
    record = await store.get(caller.user_id, trigger_id)
    return TriggerOut.of(record, events=await store.history(caller.user_id, trigger_id))


@router.patch("/{trigger_id}", responses={**NOT_FOUND, **CONFLICT, **BAD_INPUT, **LIMITED})
async def edit(trigger_id: str, body: TriggerPatch, request: Request, caller: Writer) -> TriggerOut:
    """Change fields of an active or paused trigger; the engine has it before this returns.

    The edit is validated as a whole (an oco's legs against each other) and
    written with its `updated` event in one transaction, or not at all.
    """
    runtime = runtime_of(request)
    current = (await runtime.triggers.get(caller.user_id, trigger_id)).trigger
    # The edited trigger's instrument, checked as at create: every edit, since a
    # price or quantity must fit its tick and lot size too.
    listed = await runtime.instruments.resolve(
        InstrumentToken(body.instrument_token or current.instrument_token),
        body.exchange or current.exchange,
        body.tradingsymbol or current.tradingsymbol,
    )
    changes = body.changes(current, divisor=listed.instrument.price_divisor)
    record = await runtime.triggers.update(
        caller.user_id, trigger_id, changes, instrument=listed.instrument
    )
    out = await _in_engine(runtime, record)
    if listed.warning is not None:
        out.warnings.append(listed.warning)
    return out


@router.post("/{trigger_id}/pause", responses={**NOT_FOUND, **CONFLICT, **LIMITED})
async def pause(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Pause an active trigger: kept, but out of the engine until resumed."""
    runtime = runtime_of(request)
    record = await runtime.triggers.pause(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.post("/{trigger_id}/resume", responses={**NOT_FOUND, **CONFLICT, **LIMITED})
async def resume(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Resume a paused trigger; if its condition holds now it fires on the next tick."""
    runtime = runtime_of(request)
    record = await runtime.triggers.resume(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.delete("/{trigger_id}", responses={**NOT_FOUND, **CONFLICT, **LIMITED})
async def cancel(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Cancel one of your triggers; it is out of the engine before this returns."""
    runtime = runtime_of(request)
    record = await runtime.triggers.cancel(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


async def _in_engine(runtime: Facade, record: TriggerRecord) -> TriggerOut:
    """Every change reaches the running engine before its response returns."""
    await runtime.engine.refresh(record.id)
    return TriggerOut.of(record)
