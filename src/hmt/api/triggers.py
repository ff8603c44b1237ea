"""Triggers: each caller sees and changes only their own (another's id is a 404)."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hmt.api.account_id import stored_account
from hmt.api.accounts import check_account, check_kept_account
from hmt.api.auth import Caller, Writer
from hmt.api.legs import V2_KEYS, TriggerV2In, TriggerV2Patch, as_body
from hmt.api.pages import cursor_after, next_link, position
from hmt.api.problems import ApiError, TooManyTriggers
from hmt.api.runtime import runtime_of
from hmt.api.schemas import Problem, TriggerIn, TriggerPatch, TriggerRecordOut, watched
from hmt.api.timing import time_warnings
from hmt.api.trails import views as trail_views
from hmt.core.errors import FieldError, IllegalTransition, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.legs import far_side, instrument_errors
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.rules import legs_holding
from hmt.core.types import InstrumentToken, TriggerId, UserId
from hmt.core.validation import validate
from hmt.engine.facade import Facade
from hmt.store.brackets import BracketStore
from hmt.store.records import TriggerRecord
from hmt.store.triggers import OverCap

router = APIRouter(prefix="/triggers", tags=["triggers"])
# A bracket's exits are made from its entry's one order: the entry is not edited alone.
BRACKET_ENTRY = "a bracket's entry cannot be edited: cancel it and create the bracket again"
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
    warnings: tuple[str, ...] = ()  # e.g. the master could not be fetched: what went unchecked
    watch: Instrument | None = None  # v2: the watched instrument, when one was sent


# A create's body is v1 or v2; which one its `legs` says (docs/api.md).
CreateBody = TriggerIn | TriggerV2In
_JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def create_body(item: Any) -> CreateBody:
    """A create's item as the v2 model when it has `legs`, else as v1's (exactly as before)."""
    if isinstance(item, dict) and "legs" in item:
        return TriggerV2In.model_validate(item)
    return TriggerIn.model_validate(item)


async def checked(body: CreateBody, runtime: Facade, user_id: str) -> NewTrigger:
    """Every check a new trigger passes before it is written, for single and bulk create.

    The instrument master first: token, exchange and symbol must name one
    instrument, whose divisor converts the prices, then the trigger as a whole
    against it (tick and lot size). Raises `InvalidTrigger` naming each field
    and rule (the bulk route prefixes the fields with the item's index).
    """
    trigger_id = TriggerId(str(uuid.uuid4()))
    if isinstance(body, TriggerV2In):
        tokens = [named.instrument_token for _, named in body.tokens()]
        await check_account(runtime, user_id, stored_account(body.account), tokens)
        return await _checked_v2(body, runtime, UserId(user_id), trigger_id)
    # The account first: an instrument of a broker this engine does not trade is refused
    # for its account, not as an instrument the master does not list.
    await check_account(runtime, user_id, stored_account(body.account), (body.instrument_token,))
    listed = await runtime.instruments.resolve(
        InstrumentToken(body.instrument_token), body.exchange, body.tradingsymbol
    )
    instrument = listed.instrument
    trigger = body.to_trigger(trigger_id, UserId(user_id), divisor=instrument.price_divisor)
    validate(trigger, instrument=instrument, now=runtime.triggers.clock())
    return NewTrigger(trigger, instrument, () if listed.warning is None else (listed.warning,))


async def _checked_v2(
    body: TriggerV2In,
    runtime: Facade,
    user_id: UserId,
    trigger_id: TriggerId,
    status: Status | None = None,
) -> NewTrigger:
    """A v2 body against the master: the watched instrument (an index is fine) and each
    order's own instrument, then the trigger as a whole; the warnings a trader should read."""
    errors: list[FieldError] = []
    found: dict[int, Instrument] = {}
    unchecked: list[str] = []
    for prefix, named in body.tokens():
        try:
            listed = await runtime.instruments.resolve(
                InstrumentToken(named.instrument_token), named.exchange, named.tradingsymbol
            )
        except InvalidTrigger as refused:
            errors += [FieldError(prefix + e.field, e.rule, e.message) for e in refused.errors]
            continue
        found.setdefault(listed.instrument.id, listed.instrument)
        if listed.warning is not None and listed.warning not in unchecked:
            unchecked.append(listed.warning)
        if prefix == "watch.":
            errors += instrument_errors(
                prefix, named.instrument_token, named.exchange, named.tradingsymbol,
                listed.instrument, traded=False,
            )  # fmt: skip
    if errors:
        raise InvalidTrigger(errors)
    trigger = body.to_trigger(trigger_id, user_id, instruments=found, status=status)
    watch = None if trigger.watch_token is None else found[trigger.watch_token]
    validate(trigger, instruments=found, now=runtime.triggers.clock())
    notes = (*unchecked, *far_side(trigger), *time_warnings(trigger, runtime.triggers.clock()))
    return NewTrigger(trigger, found[trigger.instrument_token], notes, watch)


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


def _out(runtime: Facade, record: TriggerRecord, notes: tuple[str, ...] = ()) -> TriggerRecordOut:
    """A created trigger's record, with `notes` (the instrument master could not be had,
    a v2 trigger's advice) and a warning when its condition already holds."""
    trigger, warnings = record.trigger, list(notes)
    last = runtime.engine.last_ltp.get(trigger.watched)
    if trigger.status is Status.ACTIVE and last is not None and legs_holding(trigger, last):
        warnings.append(ALREADY_HOLDS)
    return TriggerRecordOut.of(record, warnings=warnings)


def _openapi_body(name: str) -> dict[str, Any]:
    """A body the route reads itself, described by the components `hmt.api.app` adds."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not JSON, 422 when not an object."""
    try:
        return _JSON_OBJECT.validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from None


def _invalid_body(error: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_INPUT,
        **LIMITED,
        409: {"model": Problem, "description": "At HMT_MAX_TRIGGERS_PER_USER live triggers"},
    },
    openapi_extra=_openapi_body("TriggerCreate"),
)
async def create(request: Request, caller: Writer) -> TriggerRecordOut:
    """Store a trigger (the v1 body, or v2's with `legs`); it is armed before this returns."""
    runtime = runtime_of(request)
    item = await _json_object(request)
    try:
        body = create_body(item)
    except ValidationError as error:
        raise _invalid_body(error) from None
    new = await checked(body, runtime, caller.user_id)
    cap = runtime.settings.max_triggers_per_user
    try:  # the cap is counted by the INSERT itself: one round trip
        record = await runtime.triggers.create(
            new.trigger, instrument=new.instrument, watch=new.watch, cap=cap
        )
    except OverCap as refused:
        raise _over_cap(refused) from None
    await runtime.engine.arm(record.trigger)  # as committed: the engine need not read it back
    return _out(runtime, record, new.warnings)


class TriggersIn(BaseModel):
    """Up to MAX_BULK new triggers, each exactly what `POST /triggers` takes.

    The items are declared as v1 bodies (the schema v1 clients were given); a
    v2 body (`TriggerV2In`, with `legs`) is taken as an item too.
    """

    model_config = ConfigDict(extra="forbid")

    triggers: Annotated[
        list[TriggerIn],
        Field(
            min_length=1,
            max_length=MAX_BULK,
            description="v1 bodies as declared, or v2 bodies (TriggerV2In, with `legs`)",
        ),
    ]


class TriggersOut(BaseModel):
    """The created triggers, in the order they were sent."""

    triggers: list[TriggerRecordOut]


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
            news.append(await checked(create_body(item), runtime, caller.user_id))
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
            watches=[n.watch for n in news],
            cap=runtime.settings.max_triggers_per_user,
        )
    except OverCap as refused:
        raise _over_cap(refused) from None
    for record in records:
        await runtime.engine.arm(record.trigger)
    return TriggersOut(
        triggers=[
            _out(runtime, record, new.warnings) for record, new in zip(records, news, strict=True)
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
) -> list[TriggerRecordOut]:
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
    shown = await trail_views(store.db, runtime_of(request).engine, records)
    return [TriggerRecordOut.of(r, trails=shown.get(r.id)) for r in records]


@router.get("/{trigger_id}", responses=NOT_FOUND)
async def get(trigger_id: str, request: Request, caller: Caller) -> TriggerRecordOut:
    """One of your triggers, with its event history."""
    store = runtime_of(request).triggers
    record = await store.get(caller.user_id, trigger_id)
    shown = await trail_views(store.db, runtime_of(request).engine, [record])
    return TriggerRecordOut.of(
        record,
        events=await store.history(caller.user_id, trigger_id),
        trails=shown.get(record.id),
    )


@router.patch(
    "/{trigger_id}",
    responses={**NOT_FOUND, **CONFLICT, **BAD_INPUT, **LIMITED, **RECONCILING},
    openapi_extra=_openapi_body("TriggerEdit"),
)
async def edit(trigger_id: str, request: Request, caller: Writer) -> TriggerRecordOut:
    """Change fields of an active or paused trigger; the engine has it before this returns.

    A v1 trigger takes v1 fields, or v2 fields (it then becomes a v2 trigger);
    a v2 trigger takes v2 fields, and of v1's only `trigger_type`,
    `expires_at` and `account`. The edit is validated as a whole (an oco's legs against each
    other) and written with its `updated` event in one transaction, or not at all.
    """
    runtime = runtime_of(request)
    item = await _json_object(request)
    try:
        body: TriggerPatch | TriggerV2Patch = (
            TriggerV2Patch.model_validate(item)
            if V2_KEYS & item.keys()
            else TriggerPatch.model_validate(item)
        )
    except ValidationError as error:
        raise _invalid_body(error) from None
    _not_while_reconciling(runtime)
    record = await runtime.triggers.get(caller.user_id, trigger_id)
    current = record.trigger
    if current.leg_specs and await BracketStore(runtime.triggers).is_bracket(
        caller.user_id, trigger_id
    ):
        raise InvalidTrigger([FieldError("id", "bracket", BRACKET_ENTRY)])
    if isinstance(body, TriggerPatch) and current.leg_specs:
        body = _as_v2_edit(body)
    if isinstance(body, TriggerV2Patch):
        return await _edit_v2(runtime, caller.user_id, record, body)
    # The edited trigger's instrument, checked as at create: every edit, since a
    # price or quantity must fit its tick and lot size too.
    listed = await runtime.instruments.resolve(
        InstrumentToken(body.instrument_token or current.instrument_token),
        body.exchange or current.exchange,
        body.tradingsymbol or current.tradingsymbol,
    )
    changes = body.changes(current, divisor=listed.instrument.price_divisor)
    tokens = (listed.instrument.id,)
    if "account" in changes:
        await check_account(runtime, caller.user_id, changes["account"], tokens)
    else:
        await check_kept_account(runtime, caller.user_id, current.account, tokens)
    record = await runtime.triggers.update(
        caller.user_id, trigger_id, changes, instrument=listed.instrument
    )
    out = await _in_engine(runtime, record)
    if listed.warning is not None:
        out.warnings.append(listed.warning)
    return out


# The v1 fields a v2 trigger's edit may name: they mean the same in both shapes.
_SHARED = frozenset({"trigger_type", "expires_at", "account"})


def _as_v2_edit(body: TriggerPatch) -> TriggerV2Patch:
    """A v1-shaped edit of a v2 trigger: its shared fields, or a 422 naming the others."""
    sent = body.model_fields_set
    others = sorted(sent - _SHARED)
    if others:
        raise InvalidTrigger(
            FieldError(
                name,
                "v2_trigger",
                "this trigger has legs: change legs[].orders[] or legs[].condition instead",
            )
            for name in others
        )
    return TriggerV2Patch.model_validate(body.model_dump(include=set(sent)))


async def _edit_v2(
    runtime: Facade, user_id: str, record: TriggerRecord, body: TriggerV2Patch
) -> TriggerRecordOut:
    """Apply a v2 edit: the trigger rebuilt from its body with the edit applied, checked
    as a create is, then written as the changed fields."""
    current = record.trigger
    watch = watched(record) if current.watch_token is not None else None
    merged = body.applied(as_body(current, watch))
    try:
        edited = TriggerV2In.model_validate(merged)
    except ValidationError as error:
        raise _invalid_body(error) from None
    new = await _checked_v2(edited, runtime, current.user_id, current.id, current.status)
    tokens = instrument_ids(new.trigger)
    if "account" in body.model_fields_set:  # not sent: the trigger's is kept
        await check_account(runtime, user_id, new.trigger.account, tokens)
    else:
        await check_kept_account(runtime, user_id, new.trigger.account, tokens)
    changes = {
        f.name: getattr(new.trigger, f.name)
        for f in dataclasses.fields(Trigger)
        if f.name not in ("id", "user_id", "status")
        and getattr(new.trigger, f.name) != getattr(current, f.name)
    }
    if not changes:  # nothing differs: still an edit (its event says who asked)
        changes = {"expires_at": current.expires_at}
    updated = await runtime.triggers.update(
        user_id, current.id, changes, instrument=new.instrument, watch=new.watch
    )
    out = await _in_engine(runtime, updated)
    out.warnings.extend(new.warnings)
    return out


@router.post("/{trigger_id}/pause", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def pause(trigger_id: str, request: Request, caller: Writer) -> TriggerRecordOut:
    """Pause an active trigger: kept, but out of the engine until resumed."""
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
    record = await runtime.triggers.pause(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.post("/{trigger_id}/resume", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def resume(trigger_id: str, request: Request, caller: Writer) -> TriggerRecordOut:
    """Resume a paused trigger; if its condition holds now it fires on the next tick."""
    runtime = runtime_of(request)
    _not_while_reconciling(runtime)
    record = await runtime.triggers.resume(caller.user_id, trigger_id)
    return await _in_engine(runtime, record)


@router.delete("/{trigger_id}", responses={**NOT_FOUND, **CONFLICT, **LIMITED, **RECONCILING})
async def cancel(trigger_id: str, request: Request, caller: Writer) -> TriggerRecordOut:
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


async def _in_engine(runtime: Facade, record: TriggerRecord) -> TriggerRecordOut:
    """Every change reaches the running engine before its response returns."""
    await runtime.engine.refresh(record.id)
    return TriggerRecordOut.of(record)


def instrument_ids(trigger: Trigger) -> set[int]:
    """Every instrument a trigger names: the one it watches and each order's."""
    ids = {int(trigger.watched)}
    for leg in trigger.legs:
        ids.update(int(spec.instrument_token) for spec in trigger.orders(leg))
    return ids
