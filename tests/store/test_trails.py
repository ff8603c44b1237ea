"""Trailing stops in the store (issue 14), on SQLite and PostgreSQL: a trailing leg's terms
round-trip through the `legs` column exactly (every offset kind, activation, step,
reference, a watched instrument in other units), a claim loses to an edit of the trail,
and `hmt_trail_states` keeps the last written state per leg."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmt.core.errors import InvalidTrigger
from hmt.core.model import LegSpec
from hmt.core.trailing import Offset, Reference, Trail, TrailState
from hmt.core.types import Direction, Leg, Side
from hmt.store import legs
from hmt.store.db import Database
from hmt.store.trails import TrailStates, terms
from hmt.store.triggers import TriggerStore
from tests.store.conftest import Clock
from tests.support.claimer import claim
from tests.support.trailing import make_trailing, trails


@given(trail=trails(tick=5), divisor=st.sampled_from([100, 10_000, 10_000_000]))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_the_legs_column_round_trips_every_trail(trail: Trail, divisor: int) -> None:
    """In rupees with the watched divisor and back: the same `Trail`, whatever the terms."""
    specs = (LegSpec(trail=trail),)
    column = legs.to_json(specs, divisor)
    assert column is not None
    assert column[0]["trail"]["price_divisor"] == divisor
    assert legs.from_json(column) == specs


def test_a_legs_column_without_trail_reads_as_before() -> None:
    column = [{"direction": "at_or_below", "at": None, "orders": []}]
    (spec,) = legs.from_json(column)
    assert spec.trail is None
    assert "trail" not in (legs.to_json((spec,)) or [{}])[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "yards"}, "legs[0].trail"),
        ({"offset": "0.003"}, "legs[0].trail.offset"),
        ({"kind": "bps", "offset": "1.5"}, "legs[0].trail.offset"),
        ({"tick": None}, "legs[0].trail.tick"),
        ({"price_divisor": 0}, "legs[0].trail.price_divisor"),
        ({"step": "0.07"}, "legs[0].trail"),  # not a whole number of ticks
        ({"reference": "ask"}, "legs[0].trail"),  # a SELL stop never trails the ask
    ],
)
def test_a_trail_another_tool_wrote_wrong_names_its_place(
    change: dict[str, Any], field: str
) -> None:
    trail = legs.to_json((LegSpec(trail=Trail(Side.SELL, Offset.PRICE, 500, 5)),), 100)
    assert trail is not None
    trail[0]["trail"].update(change)
    with pytest.raises(InvalidTrigger) as refused:
        legs.from_json(trail)
    assert [e.field for e in refused.value.errors] == [field]


async def test_a_trailing_oco_round_trips_and_its_claim_sees_a_trail_edit(
    store: TriggerStore,
) -> None:
    trail = Trail(
        Side.SELL, Offset.BPS, 150, 5, activation=160_000, step=20, reference=Reference.BID
    )
    trigger = make_trailing(trail, target=(170_000, Direction.AT_OR_ABOVE))
    created = await store.create(trigger)
    assert created.trigger == trigger
    loaded = await store.load(trigger.id)
    assert loaded is not None
    assert loaded.trigger == trigger
    assert loaded.trigger.trail(Leg.FIRST) == trail
    assert loaded.trigger.threshold(Leg.FIRST) == 0  # a trailing leg has no fixed price
    looser = dataclasses.replace(trail, offset=200)
    edit = {"leg_specs": (LegSpec(trail=looser), trigger.leg_specs[1])}
    edited = (await store.update("alice", trigger.id, edit)).trigger
    assert edited.trail(Leg.FIRST) == looser
    # The engine fired on the terms it loaded: the edit wins, that claim loses.
    assert not await claim(store, trigger, Leg.FIRST, 159_000)
    assert await claim(store, edited, Leg.FIRST, 159_000)


async def test_states_are_written_read_and_overwritten_per_leg(db: Database, clock: Clock) -> None:
    states = TrailStates(db)
    trail = Trail(Side.SELL, Offset.PRICE, 500, 5)
    first, second = "6f1f7c52-5b8e-4f5e-9d3a-2f0c1b7c9a01", "6f1f7c52-5b8e-4f5e-9d3a-2f0c1b7c9a02"
    at = clock()
    await states.save(
        {
            (first, 1): (terms(trail), TrailState(10_000, 9_500)),
            (second, 2): (terms(trail), TrailState()),
        },
        at,
    )
    read = await states.read()
    assert read[(first, 1)].state == (10_000, 9_500)
    assert read[(first, 1)].terms == terms(trail)
    assert read[(first, 1)].written_at == at
    assert read[(second, 2)].state == (None, None)
    later = at + timedelta(seconds=1)
    await states.save({(first, 1): (terms(trail), TrailState(10_100, 9_600))}, later)
    read = await states.read([first])
    assert set(read) == {(first, 1)}
    assert (read[(first, 1)].state, read[(first, 1)].written_at) == ((10_100, 9_600), later)
    assert await states.read([]) == {}
    assert await states.forget([(first, 1)]) == 1
    assert set(await states.read()) == {(second, 2)}
    many = {
        (f"6f1f7c52-5b8e-4f5e-9d3a-{i:012d}", 1): (terms(trail), TrailState(i + 500, i))
        for i in range(1, 1201)
    }
    await states.save(many, later)
    assert len(await states.read()) == 1201
