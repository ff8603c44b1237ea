"""Trigger bodies checked without a running engine, against a given instrument master.

The backtest (`hmt backtest`) reads triggers as a JSON file in the API's own
request format: one create body, a list of them, or the bulk endpoint's
`{"triggers": [...]}`. Each item goes through the same models and rules as
`POST /triggers` (`create_body`, the master's instrument checks, `validate`),
so a bad item is refused with the same field names and rules as the 422 the
API would answer, prefixed `triggers[<index>].` as the bulk endpoint does.
Expiry in the past is not an error here: a backtest replays the past.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from hmt.api.legs import TriggerV2In
from hmt.api.problems import _field_path
from hmt.api.triggers import create_body
from hmt.core.errors import FieldError, InvalidTrigger
from hmt.core.instruments import Instrument
from hmt.core.legs import instrument_errors
from hmt.core.model import Trigger
from hmt.core.types import TriggerId, UserId
from hmt.core.validation import unknown_instrument, validate


def items_of(document: Any) -> list[Any]:
    """The create bodies a document holds: itself, its list, or its `triggers` list."""
    if isinstance(document, dict) and set(document) == {"triggers"}:
        document = document["triggers"]
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    raise InvalidTrigger(
        [
            FieldError(
                "triggers", "type", 'send a create body, a list of them or {"triggers": [...]}'
            )
        ]
    )


def parse_triggers(
    text: str, master: Mapping[int, Instrument], *, user_id: str = "backtest"
) -> list[Trigger]:
    """Every trigger of a JSON document, checked; `InvalidTrigger` names every bad field.

    Ids are `t1`, `t2`, ... in the document's order, so a report is the same
    for the same file.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidTrigger(
            [
                FieldError(
                    "body",
                    "json_invalid",
                    f"{error.msg} at line {error.lineno} column {error.colno}",
                )
            ]
        ) from None
    errors: list[FieldError] = []
    found: list[Trigger] = []
    for index, item in enumerate(items_of(document)):
        where = f"triggers[{index}]."
        try:
            found.append(_checked(item, master, TriggerId(f"t{index + 1}"), UserId(user_id)))
        except ValidationError as error:
            errors += [
                FieldError(where + _field_path(e["loc"]), e["type"], e["msg"])
                for e in error.errors()
            ]
        except InvalidTrigger as error:
            errors += [FieldError(where + e.field, e.rule, e.message) for e in error.errors]
    if errors:
        raise InvalidTrigger(errors)
    return found


def _checked(
    item: Any, master: Mapping[int, Instrument], trigger_id: TriggerId, user_id: UserId
) -> Trigger:
    body = create_body(item)
    if isinstance(body, TriggerV2In):
        errors: list[FieldError] = []
        found: dict[int, Instrument] = {}
        for prefix, named in body.tokens():
            instrument = master.get(named.instrument_token)
            if instrument is None:
                unknown = unknown_instrument(named.instrument_token)
                errors.append(FieldError(prefix + unknown.field, unknown.rule, unknown.message))
                continue
            found[instrument.id] = instrument
            errors += instrument_errors(
                prefix, named.instrument_token, named.exchange, named.tradingsymbol,
                instrument, traded=prefix != "watch.",
            )  # fmt: skip
        if errors:
            raise InvalidTrigger(errors)
        trigger = body.to_trigger(trigger_id, user_id, instruments=found)
        return validate(trigger, instruments=found)
    instrument = master.get(body.instrument_token)
    if instrument is None:
        raise InvalidTrigger([unknown_instrument(body.instrument_token)])
    wrong = instrument_errors(
        "", body.instrument_token, body.exchange, body.tradingsymbol, instrument, traded=True
    )
    if wrong:
        raise InvalidTrigger(wrong)
    trigger = body.to_trigger(trigger_id, user_id, divisor=instrument.price_divisor)
    return validate(trigger, instrument=instrument)
