"""The bracket routes: an entry (a v2 trigger of one leg and one order) and its exits.

    POST /brackets          {"entry": <a v2 trigger body>, "exits": {"target", "stop"}}
    GET  /brackets/{id}     the bracket: entry -> fills -> exits, each with its status

The entry is an ordinary trigger (`GET /triggers/{id}` reads it, `DELETE` cancels
it and its bracket while it has not fired); the exits are oco triggers the engine
makes from the entry order's fills (docs/triggers.md, "Brackets").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hmt.api.account_id import stored_account
from hmt.api.accounts import check_account
from hmt.api.auth import Caller, Writer
from hmt.api.legs import Price, TriggerV2In
from hmt.api.runtime import runtime_of
from hmt.api.schemas import Problem, TriggerRecordOut
from hmt.api.trails import TrailIn, as_json, to_trail
from hmt.api.triggers import (
    BAD_INPUT,
    LIMITED,
    _checked_v2,
    _invalid_body,
    _json_object,
    _openapi_body,
)
from hmt.core.brackets import Exits
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.prices import to_decimal, to_units
from hmt.core.types import Side, TriggerId, TriggerType, UserId
from hmt.store.brackets import BracketRecord, BracketStore

router = APIRouter(prefix="/brackets", tags=["brackets"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


class ExitsIn(BaseModel):
    """The exits, in rupees of the entry order's instrument: a target, and a fixed `stop`
    or a trailing stop (`trail`, the terms of a trailing leg: docs/api.md)."""

    model_config = ConfigDict(extra="forbid")

    target: Price
    stop: Price | None = None
    trail: TrailIn | None = None


class BracketIn(BaseModel):
    """An entry (a v2 `single` trigger with one order) and the exits its fills arm."""

    model_config = ConfigDict(extra="forbid")

    entry: TriggerV2In
    exits: ExitsIn


class BracketEventOut(BaseModel):
    kind: str
    at: datetime
    payload: dict[str, Any]


class BracketOut(BaseModel):
    """A bracket: its status, the entry order's fills and the exits they armed."""

    id: str
    status: str
    target: Decimal
    stop: Decimal | None
    trail: dict[str, Any] | None = Field(description="A trailing stop's terms, as sent")
    filled: int = Field(description="What the entry order has filled, as the broker said")
    armed: int = Field(description="The exits' quantities summed: never above `filled`")
    entry_status: str | None = Field(description="The broker's last status of the entry order")
    error_message: str | None
    entry: TriggerRecordOut
    exits: list[TriggerRecordOut]
    history: list[BracketEventOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: BracketRecord) -> BracketOut:
        [order] = record.entry.trigger.orders(record.entry.trigger.legs[0])
        divisor = order.price_divisor
        stop = record.exits.stop
        return cls(
            id=record.id,
            status=record.status.value,
            target=to_decimal(record.exits.target, divisor),
            stop=None if stop is None else to_decimal(stop, divisor),
            trail=None if record.exits.trail is None else as_json(record.exits.trail, divisor),
            filled=record.filled,
            armed=record.armed,
            entry_status=record.entry_status,
            error_message=record.error_message,
            entry=TriggerRecordOut.of(record.entry),
            exits=[TriggerRecordOut.of(e) for e in record.exit_records],
            history=[
                BracketEventOut(kind=k.value, at=at, payload=dict(p)) for k, at, p in record.history
            ],
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**BAD_INPUT, **LIMITED},
    openapi_extra=_openapi_body("BracketIn"),
)
async def create(request: Request, caller: Writer) -> BracketOut:
    """Store a bracket: its entry is armed before this returns, its exits wait for fills."""
    runtime = runtime_of(request)
    item = await _json_object(request)
    try:
        body = BracketIn.model_validate(item)
    except ValidationError as error:
        raise _invalid_body(error) from None
    if body.entry.trigger_type is not TriggerType.SINGLE:
        raise InvalidTrigger(
            [FieldError("entry.trigger_type", "bracket", "a bracket's entry is a single trigger")]
        )
    if len(body.entry.legs[0].orders) != 1:
        raise InvalidTrigger(
            [FieldError("entry.legs[0].orders", "bracket", "a bracket's entry places one order")]
        )
    # The entry's account is checked as a trigger's (the caller's, traded here, the
    # instruments its broker's): its exits trade through it too (docs/accounts.md).
    tokens = [named.instrument_token for _, named in body.entry.tokens()]
    try:
        await check_account(runtime, caller.user_id, stored_account(body.entry.account), tokens)
    except InvalidTrigger as refused:
        raise InvalidTrigger(
            [FieldError("entry." + e.field, e.rule, e.message) for e in refused.errors]
        ) from None
    new = await _checked_v2(body.entry, runtime, UserId(caller.user_id), _new_id())
    [order] = new.trigger.orders(new.trigger.legs[0])
    errors: list[FieldError] = []
    units: dict[str, int] = {}
    if (body.exits.stop is None) == (body.exits.trail is None):
        raise InvalidTrigger([FieldError("exits", "one_stop", "send one of stop and trail")])
    tick = new.instrument.tick_size if new.instrument is not None else 1
    trail = None
    if body.exits.trail is not None and new.instrument is not None:
        exit_side = Side.SELL if order.side is Side.BUY else Side.BUY
        trail = to_trail(
            body.exits.trail,
            "exits.trail",
            stated=None,
            order_side=exit_side,
            watched=new.instrument,
            errors=errors,
        )
    for name in ("target", "stop"):
        if getattr(body.exits, name) is None:
            continue
        try:
            units[name] = to_units(
                getattr(body.exits, name), order.price_divisor, field=f"exits.{name}"
            )
        except InvalidTrigger as refused:
            errors += refused.errors
            continue
        if tick > 1 and units[name] % tick:
            errors.append(
                FieldError(
                    f"exits.{name}",
                    "tick_size",
                    f"must be a multiple of the tick size {to_decimal(tick, order.price_divisor)}",
                )
            )
    if errors:
        raise InvalidTrigger(errors)
    exits = Exits(target=units["target"], stop=units.get("stop"), trail=trail)
    record = await BracketStore(runtime.triggers).create(
        new.trigger, exits, instrument=new.instrument, watch=new.watch
    )
    await runtime.engine.arm(record.entry.trigger)
    return BracketOut.of(record)


@router.get("/{bracket_id}", responses=NOT_FOUND)
async def get(bracket_id: str, request: Request, caller: Caller) -> BracketOut:
    """One of your brackets: entry -> fills -> exits, each order's status."""
    runtime = runtime_of(request)
    return BracketOut.of(await BracketStore(runtime.triggers).get(caller.user_id, bracket_id))


def _new_id() -> TriggerId:
    return TriggerId(str(uuid.uuid4()))
