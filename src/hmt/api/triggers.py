"""Triggers: each caller sees and changes only their own (another's id is a 404)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hmt.api.auth import Caller, Writer
from hmt.api.pages import cursor_after, next_link, position
from hmt.api.problems import ApiError, TooManyTriggers
from hmt.api.runtime import runtime_of
from hmt.api.schemas import Problem, TriggerIn, TriggerOut, TriggerPatch
from hmt.core.errors import IllegalTransition, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.rules import legs_holding
from hmt.core.types import InstrumentToken, TriggerId, UserId
from hmt.core.validation import validate
from hmt.engine.facade import Facade
from hmt.store.records import TriggerRecord
from hmt.store.triggers import OverCap

router = APIRouter(prefix="/triggers", tags=["triggers"])
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such trigger of yours"}}
BAD_INPUT: Responses = {422: {"model": Problem, "description": "A field broke a rule"}}
CONFLICT: Responses = {409: {"model": Problem, "description": "Not possible in its status"}}
LIMITED: Responses = {
    429: {"model": Problem, "description": "Too many writes with this token (Retry-After)"}
}
RECONCILING: Responses = {
    503: {"model": Problem, "description": "Checking the broker's order book (Retry-After)"}
}
LIVE = (Status.ACTIVE.value, Status.PAUSED.value)
ALREADY_HOLDS = "its condition already holds at the last traded price: it fires on the next tick"
MAX_PAGE = 500
MAX_BULK = 1000  # one morning's import in one request; HMT_MAX_TRIGGERS_PER_USER's default
PAGE_HEADERS = {
    "X-Total-Count": {
        "description": "How many of your triggers match the filters, on every page",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Link": {
        "description": 'RFC 8288: `</triggers?...&cursor=...>; rel="next"` while there are more',
        "schema": {"type": "string"},
    },
}


@dataclass(frozen=True, slots=True)
class NewTrigger:
    """A create's item once checked: the trigger to write and what it was checked against."""

    trigger: Trigger
    instrument: Instrument | None = None  # the master's entry, checked again at the write
    warning: str | None = None  # the master could not be fetched: what went unchecked


async def checked(body: TriggerIn, runtime: Facade, user_id: str) -> NewTrigger:
    """Every check a new trigger passes before it is written, for single and bulk create.

    The instrument master first: token, exchange and symbol must name one
    instrument, whose divisor converts the prices, then the trigger as a whole
    against it (tick and lot size). Raises `InvalidTrigger` naming each field
    and rule (the bulk route prefixes the fields with the item's index).
    """
    listed = await runtime.instruments.resolve(
        InstrumentToken(body.instrument_token), body.exchange, body.tradingsymbol
    )
    instrument = listed.instrument
    trigger_id, divisor = TriggerId(str(uuid.uuid4())), instrument.price_divisor
    trigger = body.to_trigger(trigger_id, UserId(user_id), divisor=divisor)
    validate(trigger, instrument=instrument, now=runtime.triggers.clock())
    return NewTrigger(trigger, instrument, listed.warning)


def _over_cap(refused: OverCap) -> TooManyTriggers:
    """The store's refusal at HMT_MAX_TRIGGERS_PER_USER, in the caller's words."""
    live, limit, adding = refused.live, refused.cap, refused.adding
    if adding == 1:
        return TooManyTriggers(
            f"you have {live} active or paused triggers, the most allowed "
            f"({limit}, HMT_MAX_TRIGGERS_PER_USER): cancel some first"
        )
    return TooManyTriggers(
        f"you have {live} active or paused triggers and these {adding} would make "
        f"{live + adding}, over the most allowed ({limit}, HMT_MAX_TRIGGERS_PER_USER): "
        f"send at most {max(0, limit - live)}, or cancel some first"
    )


def _out(runtime: Facade, record: TriggerRecord, unchecked: str | None = None) -> TriggerOut:
    """A created trigger's record, warning when the instrument master could not be had
    (`unchecked`) and when its condition already holds."""
    trigger, warnings = record.trigger, [] if unchecked is None else [unchecked]
    last = runtime.engine.last_ltp.get(trigger.instrument_token)
    if trigger.status is Status.ACTIVE and last is not None and legs_holding(trigger, last):
        warnings.append(ALREADY_HOLDS)
    return TriggerOut.of(record, warnings=warnings)


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
    new = await checked(body, runtime, caller.user_id)
    cap = runtime.settings.max_triggers_per_user
    try:  # the cap is counted by the INSERT itself: one round trip
        record = await runtime.triggers.create(new.trigger, instrument=new.instrument, cap=cap)
    except OverCap as refused:
        raise _over_cap(refused) from None
    await runtime.engine.arm(record.trigger)  # as committed: the engine need not read it back
    return _out(runtime, record, new.warning)


class TriggersIn(BaseModel):
    """Up to MAX_BULK new triggers, each exactly what `POST /triggers` takes."""

    model_config = ConfigDict(extra="forbid")

    triggers: Annotated[list[TriggerIn], Field(min_length=1, max_length=MAX_BULK)]


class TriggersOut(BaseModel):
    """The created triggers, in the order they were sent."""

    triggers: list[TriggerOut]


class _Envelope(BaseModel):
    """`TriggersIn` with its items left raw, so that each is checked, and named, on its own."""

    model_config = ConfigDict(extra="forbid")

    triggers: Annotated[list[Any], Field(min_length=1, max_length=MAX_BULK)]


@router.post(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_INPUT,
        **LIMITED,
        409: {"model": Problem, "description": "Over HMT_MAX_TRIGGERS_PER_USER live triggers"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TriggersIn"}}
            },
        }
    },
)
async def create_many(request: Request, caller: Writer) -> TriggersOut:
    """Store up to 1000 triggers at once, all or none; each is armed before this returns.

    Every item is checked first; if any is bad, the 422 names each bad item's
    fields as `triggers[<index>].<field>` and nothing is written. Otherwise all
    are written in one transaction. The request counts as one write for the
    rate limit; the items count against HMT_MAX_TRIGGERS_PER_USER.
    """
    runtime = runtime_of(request)
    items = _items(await request.body())
    problems: list[dict[str, Any]] = []
    news: list[NewTrigger] = []
    for index, item in enumerate(items):
        where = ("body", "triggers", index)
        try:
            body = TriggerIn.model_validate(item)
            news.append(await checked(body, runtime, caller.user_id))
        except ValidationError as error:
            problems += [{**e, "loc": (*where, *e["loc"])} for e in error.errors()]
        except InvalidTrigger as error:
            problems += [
                {"loc": (*where, e.field), "type": e.rule, "msg": e.message} for e in error.errors
            ]
    if problems:
        raise RequestValidationError(problems)
    try:
        records = await runtime.triggers.create_many(
            [n.trigger for n in news],
            instruments=[n.instrument for n in news],
            cap=runtime.settings.max_triggers_per_user,
        )
    except OverCap as refused:
        raise _over_cap(refused) from None
    for record in records:
        await runtime.engine.arm(record.trigger)
    return TriggersOut(
        triggers=[
            _out(runtime, record, new.warning) for record, new in zip(records, news, strict=True)
        ]
    )


def _items(raw: bytes) -> list[Any]:
    """The body's `triggers` list, its shape checked; the items are checked one by one."""
    try:
        return _Envelope.model_validate_json(raw).triggers
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from None


@router.get("", responses={200: {"description": "Your triggers", "headers": PAGE_HEADERS}})
async def list_triggers(
    request: Request,
    response: Response,
    caller: Caller,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    instrument_token: int | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> list[TriggerOut]:
    """Your triggers, newest first, filtered by status and instrument, a page at a time.

    `X-Total-Count` says how many match; while more remain, `Link` carries the
    next page's URL with an opaque `cursor` (keyset: triggers created meanwhile
    shift nothing). `offset` still works, and applies after a cursor.
    """
    store = runtime_of(request).triggers
    after = None if cursor is None else position(cursor)
    records = await store.list(
        caller.user_id,
        status=status_,
        instrument_token=instrument_token,
        limit=limit + 1,
        offset=offset,
        after=after,
    )
    total = await store.count(caller.user_id, status=status_, instrument_token=instrument_token)
    response.headers["X-Total-Count"] = str(total)
    if len(records) > limit:
        records = records[:limit]
        query = dict(request.query_params)
        response.headers["Link"] = next_link(request.url.path, query, cursor_after(records[-1]))
    return [TriggerOut.of(r) for r in records]


@router.get("/{trigger_id}", responses=NOT_FOUND)
async def get(trigger_id: str, request: Request, caller: Caller) -> TriggerOut:
    """One of your triggers, with its event history."""
    store = runtime_of(request).triggers
    record = await store.get(caller.user_id, trigger_id)
    return TriggerOut.of(record, events=await store.history(caller.user_id, trigger_id))


@router.patch(
    "/{trigger_id}", responses={**NOT_FOUND, **CONFLICT, **BAD_INPUT, **LIMITED, **RECONCILING}
)
async def edit(trigger_id: str, body: TriggerPatch, request: Request, caller: Writer) -> TriggerOut:
    """Change fields of an active or paused trigger; the engine has it before this returns.

    The edit is validated as a whole (an oco's legs against each other) and
    written with its `updated` event in one transaction, or not at all.
    """
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
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


@router.post("/{trigger_id}/pause", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def pause(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Pause an active trigger: kept, but out of the engine until resumed."""
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
    record = await runtime.triggers.pause(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.post("/{trigger_id}/resume", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def resume(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Resume a paused trigger; if its condition holds now it fires on the next tick."""
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
    record = await runtime.triggers.resume(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.delete("/{trigger_id}", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def cancel(trigger_id: str, request: Request, caller: Writer) -> TriggerOut:
    """Cancel one of your triggers; it is out of the engine before this returns.

    Cancelling a cancelled trigger is a 200 with its record and no second
    event, so a client may safely retry; a trigger that has fired, been placed,
    failed or expired cannot be cancelled (409 saying why).
    """
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
    try:
        record = await runtime.triggers.cancel(caller.user_id, trigger_id)
    except IllegalTransition as refused:
        if refused.status != Status.CANCELLED.value:
            raise
        # Cancelled is terminal, so the row read now is the one that refused.
        record = await runtime.triggers.get(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


def _not_while_reconciling(runtime: Facade) -> None:
    """Refuse to change an existing trigger until the broker's order book has been read.

    After a database failure a row may read `active` although its order is at
    the broker (its claim was lost with the database): cancelling or editing it
    now would report a trigger as cancelled while its order stands.
    """
    if runtime.engine.reconciling:
        raise ApiError(
            503,
            "hmt is checking the broker's order book after a restart or a database "
            "failure; changes to existing triggers wait until it has: try again shortly",
            field="engine",
            rule="reconciling",
            headers={"Retry-After": "1"},
        )


async def _in_engine(runtime: Facade, record: TriggerRecord) -> TriggerOut:
    """Every change reaches the running engine before its response returns."""
    await runtime.engine.refresh(record.id)
    return TriggerOut.of(record)
