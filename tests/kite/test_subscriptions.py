"""The subscription plan (tokens spread over connections) and the messages that realise it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.kite.subscriptions import SubscriptionLimitError, SubscriptionPlan, changes
from hmt.kite.ticks import Mode


def _apply(told: dict[int, Mode], messages: list[str]) -> dict[int, Mode]:
    """What a Kite server holds after `messages`: subscribe defaults to quote, then mode sets it."""
    held = dict(told)
    for message in map(json.loads, messages):
        if message["a"] == "subscribe":
            held.update(dict.fromkeys(message["v"], Mode.QUOTE))
        elif message["a"] == "unsubscribe":
            for token in message["v"]:
                held.pop(token, None)
        else:
            held.update(dict.fromkeys(message["v"][1], Mode(message["v"][0])))
    return held


modes = st.dictionaries(st.integers(1, 60), st.sampled_from(Mode), max_size=40)


@given(modes, modes, st.integers(1, 7))
def test_changes_take_a_socket_from_told_to_wanted(
    told: dict[int, Mode], wanted: dict[int, Mode], batch: int
) -> None:
    """Applying the messages to what a socket carries gives exactly the wanted map, in batches."""
    messages = changes(told, wanted, batch)
    assert _apply(told, messages) == wanted
    assert all(len(m["v"] if m["a"] != "mode" else m["v"][1]) <= batch
               for m in map(json.loads, messages))  # fmt: skip
    assert changes(wanted, wanted, batch) == []


def test_a_fresh_socket_is_told_every_token_in_its_mode() -> None:
    """From nothing, subscribe everything, then one mode message per mode."""
    wanted = {1: Mode.LTP, 2: Mode.FULL, 3: Mode.LTP}
    assert [json.loads(m) for m in changes({}, wanted)] == [
        {"a": "subscribe", "v": [1, 2, 3]},
        {"a": "mode", "v": ["ltp", [1, 3]]},
        {"a": "mode", "v": ["full", [2]]},
    ]


def test_plan_fills_connections_in_order_and_reuses_freed_room() -> None:
    """Connection 0 fills first; the next opens only when it is full; freed room is reused."""
    plan = SubscriptionPlan(per_connection=3, max_connections=3)
    assert plan.subscribe([1, 2], Mode.LTP) == {0}
    assert plan.subscribe([3, 4, 5], Mode.QUOTE) == {0, 1}
    assert [len(c) for c in plan.connections] == [3, 2]
    assert plan.unsubscribe([2, 99]) == {0}
    assert plan.subscribe([6], Mode.FULL) == {0}
    assert plan.connection_of(6) == 0
    assert plan.subscribe([1], Mode.FULL) == {0}  # a mode change stays where it is
    assert plan.subscribe([1], Mode.FULL) == set()
    assert plan.modes() == {1: Mode.FULL, 3: Mode.QUOTE, 4: Mode.QUOTE, 5: Mode.QUOTE, 6: Mode.FULL}


def test_limit_is_all_or_nothing_with_a_clear_message() -> None:
    """Past connections x per-connection instruments: SubscriptionLimitError and nothing changes."""
    plan = SubscriptionPlan()
    plan.subscribe(range(1, 9001), Mode.LTP)
    assert [len(c) for c in plan.connections] == [3000, 3000, 3000]
    with pytest.raises(SubscriptionLimitError, match=r"9002 instruments requested.*9000 in all"):
        plan.subscribe([9001, 9002, 5], Mode.LTP)
    assert len(plan) == 9000
    assert 9001 not in plan
    plan.subscribe([5], Mode.FULL)  # known tokens still change mode at the limit
    assert plan.modes()[5] is Mode.FULL


def test_plan_rejects_bad_tokens_and_limits() -> None:
    """Bad tokens and impossible limits are ValueErrors."""
    with pytest.raises(ValueError, match="instrument token"):
        SubscriptionPlan().subscribe([-3], Mode.LTP)
    with pytest.raises(ValueError, match="at least 1"):
        SubscriptionPlan(per_connection=0)
