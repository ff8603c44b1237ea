"""The chaos schedules' v2 steps: baskets and watched instruments, seeded like the rest."""

from __future__ import annotations

from typing import Any

from tests.support.chaos_schedule import (
    BASE,
    BASKET,
    BASKET_FAULT_RATE,
    FAULT_KINDS,
    HIGH,
    LOW,
    WATCH_BASE,
    WATCH_HIGH,
    WATCH_LOW,
    WATCHED_ORDERS,
    generate,
)

SEEDS = range(200)


def legs_of(kind: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every (args, legs) of steps of `kind` over SEEDS, on both backends."""
    return [
        (step.args, step.args["legs"])
        for seed in SEEDS
        for backend in ("postgresql", "sqlite")
        for step in generate(seed, backend).steps
        if step.kind == kind
    ]


def test_every_schedule_opens_with_a_basket_and_a_watched_trigger() -> None:
    """The opening creates include one of each, after a NIFTY 50 tick, so every
    schedule has v2 triggers for the faults that follow to hit."""
    for seed in SEEDS:
        kinds = [step.kind for step in generate(seed, "postgresql").steps]
        opening = kinds[: kinds.index("create_watch") + 1]
        assert {"tick_watch", "create_basket", "create_watch"} <= set(opening)
        assert opening.index("tick_watch") < opening.index("create_watch")


def check_legs(args: dict[str, Any], legs: list[dict[str, Any]], base: int, sizes: range) -> None:
    assert len(legs) == (2 if args["oco"] else 1)
    for leg in legs:
        assert len(leg["orders"]) in sizes
        assert abs(leg["price"] - base) <= base // 100  # within 1 %
        assert leg["direction"] in ("at_or_above", "at_or_below")
    if args["oco"]:
        above = next(leg for leg in legs if leg["direction"] == "at_or_above")
        below = next(leg for leg in legs if leg["direction"] == "at_or_below")
        assert above["price"] > below["price"]  # one price never fires both


def test_basket_legs_have_two_to_five_orders_on_infys_price() -> None:
    """2-5 orders a leg, INFY and NIFTY options mixed, the trigger's first order INFY
    (the instrument a trigger without `watch` watches); the final push crosses them."""
    made = legs_of("create_basket")
    assert made
    options = 0
    for args, legs in made:
        check_legs(args, legs, BASE, range(BASKET[0], BASKET[1] + 1))
        assert legs[0]["orders"][0]["instrument"] == "INFY"
        assert all(LOW < leg["price"] < HIGH for leg in legs)
        options += sum(o["instrument"] != "INFY" for leg in legs for o in leg["orders"])
    assert options > 0
    assert any(args["oco"] for args, _ in made)


def test_watched_legs_sit_on_nifty_and_trade_infy_or_its_options() -> None:
    """Thresholds within 1 % of NIFTY 50 with stated directions; the orders INFY or NIFTY
    options; the final push on NIFTY 50 crosses every leg."""
    made = legs_of("create_watch")
    assert made
    instruments = set()
    for args, legs in made:
        check_legs(args, legs, WATCH_BASE, range(WATCHED_ORDERS[0], WATCHED_ORDERS[1] + 1))
        assert all(WATCH_LOW < leg["price"] < WATCH_HIGH for leg in legs)
        instruments |= {
            "INFY" if o["instrument"] == "INFY" else "option" for leg in legs for o in leg["orders"]
        }
    assert instruments == {"INFY", "option"}


def test_basket_faults_aim_place_order_rules_at_a_basket() -> None:
    """A basket fault is a fault like the others (counted in the budget) whose REST rule
    hits `place_order` requests at random, so it falls on single orders of the basket."""
    rules = [
        step.args
        for seed in SEEDS
        for step in generate(seed, "postgresql").steps
        if step.kind == "basket_fault"
    ]
    assert rules
    assert "basket_fault" in FAULT_KINDS
    for args in rules:
        assert args["rule"]["endpoint"] == "place_order"
        assert args["rule"]["rate"] == BASKET_FAULT_RATE
        assert args["rule"]["times"] in (1, 2)
        assert "target" in args


def test_every_schedule_has_a_bracket_the_final_push_fires() -> None:
    """Issue 14: one bracket per schedule, from its own generator (the other steps are
    as before); its entry within 1 % of BASE, fired by the final push's side, its
    target beyond the entry and its stop the other way, both crossed by the push."""
    for seed in SEEDS:
        for backend in ("postgresql", "sqlite"):
            steps = generate(seed, backend).steps
            made = [s.args for s in steps if s.kind == "create_bracket"]
            assert len(made) == 1
            (args,) = made
            up = 1 if args["side"] == "BUY" else -1
            assert abs(args["price"] - BASE) <= BASE // 100
            assert (args["target"] - args["price"]) * up > 0
            assert (args["price"] - args["stop"]) * up > 0
            assert min(args["stop"], args["target"]) > LOW
            assert max(args["stop"], args["target"]) < HIGH
            others = [s for s in steps if s.kind != "create_bracket"]
            assert [s.kind for s in others][:3] == ["tick", *["create"] * 2]
