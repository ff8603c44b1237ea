"""The field specification, the table, the record and the API schemas name the same fields."""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal
from enum import IntEnum

from hmt.api.schemas import SERVER_OWNED, TriggerIn, TriggerOut, TriggerPatch
from hmt.core.fields import (
    API_FIELDS,
    BY_NAME,
    EDITABLE,
    FIELDS,
    RECORD_FIELDS,
    TRADER_FIELDS,
    TRIGGER_FIELDS,
)
from hmt.core.model import Trigger
from hmt.store.loading import _COLUMNS
from hmt.store.records import TriggerRecord
from hmt.store.tables import gtt_orders
from hmt.store.triggers import EDITABLE_FIELDS

TRADER_API = {f.api for f in TRADER_FIELDS}


def test_every_table_column_is_specified_once() -> None:
    """Each column of hmt_gtt_orders has exactly one field, in the table's order."""
    assert [f.column for f in FIELDS] == [c.name for c in gtt_orders.columns]
    assert len({f.name for f in FIELDS}) == len(FIELDS)


def test_nullability_agrees_with_the_table() -> None:
    """A field hmt may leave empty is a nullable column; only price_divisor is stricter in hmt."""
    for f in FIELDS:
        column = gtt_orders.c[f.column]
        if f.nullable:
            assert column.nullable, f.name
        elif f.name != "price_divisor":  # NULL in other tools' rows: docs/store.md
            assert not column.nullable, f.name


def test_trigger_holds_exactly_the_trigger_fields_in_order() -> None:
    """`Trigger`'s dataclass fields are the spec's trigger fields, in the same order."""
    assert [f.name for f in dataclasses.fields(Trigger)] == [f.name for f in TRIGGER_FIELDS]


def test_record_holds_exactly_the_record_fields() -> None:
    """`TriggerRecord` is the trigger plus the spec's record fields, nothing else."""
    names = [f.name for f in dataclasses.fields(TriggerRecord)]
    assert names[0] == "trigger"
    assert set(names[1:]) == {f.name for f in RECORD_FIELDS}


def test_loader_selects_every_trigger_column_but_status() -> None:
    """The start-up load reads each `Trigger` field's column (status is the query's filter)."""
    assert {c.name for c in _COLUMNS} == {f.column for f in TRIGGER_FIELDS} - {"status"}


def test_api_schemas_carry_the_specified_fields() -> None:
    """TriggerOut shows every API field; TriggerIn and TriggerPatch take the trader's, no more."""
    assert set(TriggerOut.model_fields) == {f.api for f in API_FIELDS} | {"warnings", "events"}
    assert set(TriggerIn.model_fields) == TRADER_API | {"paused"}
    assert set(TriggerPatch.model_fields) == TRADER_API
    assert set(TriggerOut.model_fields) - TRADER_API == SERVER_OWNED
    assert BY_NAME["side"].api == "transaction_type"  # Kite's name on the wire, `side` inside


def test_api_types_follow_the_spec() -> None:
    """Prices are decimals at the edge, enums are the spec's enums, on the way in and out."""
    for f in API_FIELDS:
        shown = TriggerOut.model_fields[str(f.api)].annotation
        if f.price:
            assert Decimal in (shown, *typing.get_args(shown)), f.name
        elif f.is_enum:
            wanted = int if issubclass(f.type, IntEnum) else f.type  # a leg is shown as 1 or 2
            assert wanted in (shown, *typing.get_args(shown)), f.name
    for f in TRADER_FIELDS:
        sent = TriggerIn.model_fields[str(f.api)]
        assert sent.is_required() is (not f.nullable and f.name != "order_type"), f.name


def test_edits_may_change_exactly_the_editable_fields() -> None:
    """Edits may change the trader's fields and the divisor that follows the instrument."""
    assert {f.name for f in TRADER_FIELDS} | {"price_divisor"} == EDITABLE == EDITABLE_FIELDS
    assert not {"id", "user_id", "status"} & EDITABLE
