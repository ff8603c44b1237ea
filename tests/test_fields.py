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
from hmt.store.loading import _COLUMNS, V2_COLUMNS
from hmt.store.records import TriggerRecord
from hmt.store.tables import gtt_orders
from hmt.store.triggers import EDITABLE_FIELDS

# The v1 API's names of the trader's fields (v2's are nested: docs/api.md).
TRADER_API = {f.api for f in TRADER_FIELDS if f.api is not None}
V2_FIELDS = {"watch_token", "leg_specs", "not_before", "on_gap"}


def test_every_table_column_is_specified_once() -> None:
    """Each column of hmt_gtt_orders has exactly one field, in the table's order."""
    assert [f.column for f in FIELDS] == [c.name for c in gtt_orders.columns]
    assert len({f.name for f in FIELDS}) == len(FIELDS)


def test_nullability_agrees_with_the_table() -> None:
    """A field hmt may leave empty is a nullable column; only the fields whose NULL reads as
    a value (price_divisor, a time leg's trigger_price_1, legs, on_gap) are stricter in hmt."""
    for f in FIELDS:
        column = gtt_orders.c[f.column]
        if f.nullable:
            assert column.nullable, f.name
        elif not f.null_in_table:  # NULL in other tools' rows, or a v2 default: docs/store.md
            assert not column.nullable, f.name
    stricter = {f.name for f in FIELDS if f.null_in_table}
    assert stricter == {"price_divisor", "trigger_price_1", "leg_specs", "on_gap"}
    assert all(gtt_orders.c[BY_NAME[name].column].nullable for name in stricter)


def test_trigger_holds_exactly_the_trigger_fields_in_order() -> None:
    """`Trigger`'s dataclass fields are the spec's trigger fields, in the same order."""
    assert [f.name for f in dataclasses.fields(Trigger)] == [f.name for f in TRIGGER_FIELDS]


def test_record_holds_exactly_the_record_fields() -> None:
    """`TriggerRecord` is the trigger plus the spec's record fields, and a basket's order
    rows (`orders`, from hmt_trigger_orders), nothing else."""
    names = [f.name for f in dataclasses.fields(TriggerRecord)]
    assert names[0] == "trigger"
    assert names[-1] == "orders"
    assert set(names[1:-1]) == {f.name for f in RECORD_FIELDS}


def test_loader_selects_every_trigger_column_but_status() -> None:
    """The start-up load reads each `Trigger` field's column (status is the query's filter),
    and the watched instrument's divisor that v2 thresholds are read with."""
    assert {c.name for c in _COLUMNS} == {f.column for f in TRIGGER_FIELDS} - {
        "status",
        *(c.name for c in V2_COLUMNS),
    }
    assert {c.name for c in V2_COLUMNS} == {
        *(BY_NAME[name].column for name in V2_FIELDS),
        "watch_price_divisor",
    }


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
        if f.api is None:  # a v2 field: not in the v1 body
            continue
        sent = TriggerIn.model_fields[str(f.api)]
        assert sent.is_required() is (not f.nullable and f.name != "order_type"), f.name


def test_edits_may_change_exactly_the_editable_fields() -> None:
    """Edits may change the trader's fields and the divisor that follows the instrument."""
    assert {f.name for f in TRADER_FIELDS} | {"price_divisor"} == EDITABLE == EDITABLE_FIELDS
    assert not {"id", "user_id", "status"} & EDITABLE


def test_v2_fields_are_the_traders_and_the_watched_instruments() -> None:
    """v2's trader fields are editable `Trigger` fields outside the v1 API; the watched
    instrument's name and units are the record's, set by hmt from the master."""
    assert {f.name for f in TRADER_FIELDS if f.api is None} == V2_FIELDS
    assert all(BY_NAME[name].editable for name in V2_FIELDS)
    assert BY_NAME["leg_specs"].column == "legs"
    watch = {"watch_exchange", "watch_tradingsymbol", "watch_price_divisor"}
    assert {f.name for f in RECORD_FIELDS if f.name.startswith("watch_")} == watch
    assert not any(BY_NAME[name].editable or BY_NAME[name].api for name in watch)
