"""RELIABILITY test 1: the core's trigger lifecycle against a brute-force model.

The implementation under test is the pure core as the engine drives it: a
`TriggerBook` holding the active legs and a durable status per trigger that
changes only through `lifecycle.transition`. The model is a plain list of
triggers with their statuses, scanned leg by leg on every tick against its own
copy of DESIGN's six-row semantics table (not the core's). Rules: create
(single/oco, active or paused), edit, pause, resume, cancel, tick, claim-result
(placed/failed) and restart (the book rebuilt from the durable statuses alone).
A user action the model refuses must be refused by the core, and vice versa.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from hmt.core.book import TriggerBook
from hmt.core.errors import IllegalTransition
from hmt.core.events import EventKind
from hmt.core.lifecycle import TRANSITIONS, Status, transition
from hmt.core.model import Trigger
from hmt.core.rules import DIRECTIONS
from hmt.core.types import Direction, Leg, Side, TriggerId, TriggerType
from tests.support.factories import INFY, RELIANCE, triggers
from tests.support.services import IN_CI

# DESIGN section 1, written out again so the model does not trust the core's table.
UP, DOWN = "up", "down"
SIX_ROWS: dict[tuple[str, str, int], str] = {
    ("single", "BUY", 1): UP,
    ("single", "SELL", 1): DOWN,
    ("oco", "BUY", 1): UP,
    ("oco", "BUY", 2): DOWN,
    ("oco", "SELL", 1): DOWN,
    ("oco", "SELL", 2): UP,
}

# Which user actions the model allows in which status (its own words, not TRANSITIONS).
MODEL_ALLOWS: dict[str, frozenset[str]] = {
    "edit": frozenset({"active", "paused"}),
    "pause": frozenset({"active"}),
    "resume": frozenset({"paused"}),
    "cancel": frozenset({"active", "paused"}),
}
ACTION_EVENTS = {
    "edit": EventKind.UPDATED,
    "pause": EventKind.PAUSED,
    "resume": EventKind.RESUMED,
    "cancel": EventKind.CANCELLED,
}
MODEL_AFTER = {"edit": None, "pause": "paused", "resume": "active", "cancel": "cancelled"}

# CI: 300 examples x 50 steps; HYPOTHESIS_PROFILE=nightly: 5,000 x 100.
NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
EXAMPLES = 5_000 if NIGHTLY else 300
STEPS = 100 if NIGHTLY else 50


@dataclass
class Figures:
    """What the runs did, summed over every example."""

    examples: int = 0
    steps: int = 0
    fires: int = 0
    refusals_agreed: int = 0
    restarts: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    status_changes: Counter[tuple[str, str, str]] = field(default_factory=Counter)


FIGURES = Figures()


@dataclass
class ModelTrigger:
    """One trigger as the model remembers it."""

    trigger: Trigger
    status: str
    fired_legs: list[int] = field(default_factory=list)


def model_fires(trigger: Trigger, ltp: int) -> list[int]:
    """The legs of `trigger` that hold at `ltp`, by brute force over the six rows."""
    legs = [1] if trigger.trigger_type is TriggerType.SINGLE else [1, 2]
    holding = []
    for leg in legs:
        way = SIX_ROWS[(trigger.trigger_type.value, trigger.side.value, leg)]
        threshold = trigger.trigger_price_1 if leg == 1 else trigger.trigger_price_2
        assert threshold is not None
        if (ltp >= threshold) if way == UP else (ltp <= threshold):
            holding.append(leg)
    return holding


class LifecycleVersusModel(RuleBasedStateMachine):
    """The core (book + transition table) and the model, driven by the same random steps."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        FIGURES.examples += 1
        self.model: list[ModelTrigger] = []
        # The implementation: durable statuses (what a store keeps) and the book.
        self.durable: dict[TriggerId, tuple[Trigger, Status]] = {}
        self.book = TriggerBook()
        self.fired_ever: Counter[TriggerId] = Counter()

    # -- helpers ---------------------------------------------------------------

    def _model(self, trigger_id: TriggerId) -> ModelTrigger:
        return next(m for m in self.model if m.trigger.id == trigger_id)

    def _change(self, trigger_id: TriggerId, event: EventKind) -> Status:
        """Apply `event` to the durable status, only ever through `transition`."""
        trigger, before = self.durable[trigger_id]
        after = transition(before, event)
        assert TRANSITIONS[(before, event)] is after
        FIGURES.status_changes[(before.value, event.value, after.value)] += 1
        self.durable[trigger_id] = (trigger, after)
        return after

    def _step(self, name: str) -> None:
        FIGURES.steps += 1
        FIGURES.rules[name] += 1

    def _user_action(self, action: str, trigger_id: TriggerId, new: Trigger | None) -> None:
        """Edit, pause, resume or cancel on both sides; both must agree on refusals."""
        entry = self._model(trigger_id)
        model_ok = entry.status in MODEL_ALLOWS[action]
        try:
            after = self._change(trigger_id, ACTION_EVENTS[action])
        except IllegalTransition:
            assert not model_ok, f"core refused {action} in {entry.status}; the model allows it"
            FIGURES.refusals_agreed += 1
            return
        assert model_ok, f"core allowed {action} in {entry.status}; the model refuses it"
        if new is not None:
            self.durable[trigger_id] = (new, after)
            entry.trigger = new
        entry.status = MODEL_AFTER[action] or entry.status
        # The book follows the durable status: active legs in, anything else out.
        self.book.remove(trigger_id)
        if after is Status.ACTIVE:
            self.book.add(self.durable[trigger_id][0])

    # -- rules -----------------------------------------------------------------

    @rule(target=ids, trigger=triggers(), paused=st.booleans())
    def create(self, trigger: Trigger, paused: bool) -> TriggerId:
        self._step("create")
        status = Status.PAUSED if paused else Status.ACTIVE
        trigger = replace(trigger, status=status)
        self.model.append(ModelTrigger(trigger, status.value))
        self.durable[trigger.id] = (trigger, status)
        if status is Status.ACTIVE:
            self.book.add(trigger)
        return trigger.id

    @rule(trigger_id=ids, new=triggers())
    def edit(self, trigger_id: TriggerId, new: Trigger) -> None:
        self._step("edit")
        status = self.durable[trigger_id][1]
        self._user_action("edit", trigger_id, replace(new, id=trigger_id, status=status))

    @rule(trigger_id=ids)
    def pause(self, trigger_id: TriggerId) -> None:
        self._step("pause")
        self._user_action("pause", trigger_id, None)

    @rule(trigger_id=ids)
    def resume(self, trigger_id: TriggerId) -> None:
        self._step("resume")
        self._user_action("resume", trigger_id, None)

    @rule(trigger_id=ids)
    def cancel(self, trigger_id: TriggerId) -> None:
        self._step("cancel")
        self._user_action("cancel", trigger_id, None)

    @rule(token=st.sampled_from([INFY, RELIANCE]), ltp=st.integers(0, 61))
    def tick(self, token: int, ltp: int) -> None:
        self._step("tick")
        expected: set[tuple[TriggerId, int]] = set()
        for entry in self.model:
            if entry.status != "active" or entry.trigger.instrument_token != token:
                continue
            holding = model_fires(entry.trigger, ltp)
            assert len(holding) <= 1, "a valid oco never holds both legs at one price"
            if holding:
                expected.add((entry.trigger.id, holding[0]))
                entry.status = "triggered"
                entry.fired_legs.append(holding[0])
        fired = self.book.on_tick(token, ltp)
        got = {(f.trigger.id, int(f.leg)) for f in fired}
        assert got == expected, f"tick {token}@{ltp}: core fired {got}, model {expected}"
        assert len(fired) == len(got), "one entry per fired trigger"
        for f in fired:
            # The engine claims every fired leg before it sends anything.
            self._change(f.trigger.id, EventKind.CLAIMED)
            self.fired_ever[f.trigger.id] += 1
            FIGURES.fires += 1

    @rule(trigger_id=ids, placed=st.booleans())
    def claim_result(self, trigger_id: TriggerId, placed: bool) -> None:
        self._step("claim_result")
        entry = self._model(trigger_id)
        if entry.status != "triggered":
            assert self.durable[trigger_id][1] is not Status.TRIGGERED
            return
        self._change(trigger_id, EventKind.ORDER_SENT)
        self._change(trigger_id, EventKind.PLACED if placed else EventKind.FAILED)
        entry.status = "placed" if placed else "failed"

    @rule()
    def restart(self) -> None:
        self._step("restart")
        FIGURES.restarts += 1
        # A new process knows only what was stored: statuses and trigger rows.
        self.book = TriggerBook()
        self.book.add_many(t for t, s in self.durable.values() if s is Status.ACTIVE)

    # -- invariants ------------------------------------------------------------

    @invariant()
    def book_is_exactly_the_active_legs(self) -> None:
        active = {m.trigger.id: m.trigger for m in self.model if m.status == "active"}
        assert {t.id: t for t in self.book} == active
        for token in (INFY, RELIANCE):
            legs = sum(len(t.legs) for t in active.values() if t.instrument_token == token)
            assert self.book.count_for(token) == legs

    @invariant()
    def statuses_agree(self) -> None:
        for entry in self.model:
            assert self.durable[entry.trigger.id][1].value == entry.status

    @invariant()
    def fires_at_most_once_and_one_oco_leg(self) -> None:
        assert all(n <= 1 for n in self.fired_ever.values()), "a trigger fired twice"
        assert all(len(m.fired_legs) <= 1 for m in self.model), "an oco fired both legs"


def test_model_table_is_the_core_table() -> None:
    """The model's six rows say what the core's DIRECTIONS say (independently typed)."""
    ways = {UP: Direction.AT_OR_ABOVE, DOWN: Direction.AT_OR_BELOW}
    assert {
        (TriggerType(t), Side(s), Leg(leg)): ways[w] for (t, s, leg), w in SIX_ROWS.items()
    } == dict(DIRECTIONS)


def test_lifecycle_against_the_model() -> None:
    """RELIABILITY 1: random lifecycles agree with the model; 0 invariant violations."""
    started = time.perf_counter()
    print(
        f"\nRELIABILITY 1 profile={'nightly' if NIGHTLY else 'ci' if IN_CI else 'dev'} "
        f"examples={EXAMPLES} steps<={STEPS} (Hypothesis seeds via --hypothesis-seed)"
    )
    run_state_machine_as_test(
        LifecycleVersusModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    seconds = time.perf_counter() - started
    print(
        f"RELIABILITY 1 examples_run={FIGURES.examples} steps_run={FIGURES.steps} "
        f"fires={FIGURES.fires} restarts={FIGURES.restarts} "
        f"refusals_agreed={FIGURES.refusals_agreed} violations=0 disagreements=0 "
        f"seconds={seconds:.1f}"
    )
    print(f"RELIABILITY 1 rules={dict(sorted(FIGURES.rules.items()))}")
    changes = {f"{a}-{e}->{b}": n for (a, e, b), n in sorted(FIGURES.status_changes.items())}
    print(f"RELIABILITY 1 status changes={changes}")
    assert FIGURES.fires > 0, "the generator never fired a trigger"
    assert FIGURES.refusals_agreed > 0, "the generator never tried an illegal action"
    exercised = {(a, e) for a, e, _ in FIGURES.status_changes}
    assert len(exercised) >= 10, f"too few transitions exercised: {sorted(exercised)}"
