"""Trailing stops in the chaos schedules (issue 14): the steps, the bodies, the final push.

Every schedule gets one `create_trail` right after its opening creates and up to two
more later, drawn from a random stream of their own (the schedule's seed, salted): the
other steps of a seed stay exactly what they were. A trailing trigger is a SELL stop
protecting a long on INFY (1 share, CNC, MARKET), trailing by a price (2.00-15.00), basis
points (10-100) or ticks (20-150), sometimes from an activation price and in steps, and
a third of the time an oco beside a fixed target 0.5-10 % above.

The final push (the runner's `push_through`) is INFY at 1575.00 then 1425.00: a trailing
trigger is armed at the first until the engine has written a best at 1575.00 (its stop is
then within 16.25 of it, far above 1425.00), and at the second until it has fired. Its
oco's target fires at the first.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hmt.core.lifecycle import Status
from hmt.store.db import Database
from hmt.store.records import TriggerRecord
from hmt.store.trails import TrailStates

SALT = 0x7A11  # the trailing steps' own random stream: seed * SALT
BASE, TICK = 150_000, 10  # INFY at 1500.00, its 0.10 tick (chaos_schedule's)


def rupees(units: int) -> str:
    return f"{units / 100:.2f}"


def trail_args(rng: random.Random) -> dict[str, Any]:
    """One `create_trail` step's arguments (wire units)."""
    kind = rng.choice(["price", "bps", "ticks"])
    offset = {"price": rng.randint(20, 150) * TICK, "bps": rng.randint(10, 100)}.get(
        kind, rng.randint(20, 150)
    )
    args: dict[str, Any] = {"kind": kind, "offset": offset}
    if rng.random() < 0.3:
        args["activation"] = BASE + rng.randint(-50, 50) * TICK
    if rng.random() < 0.3:
        args["step"] = rng.choice([2, 5]) * TICK
    if rng.random() < 1 / 3:
        args["target"] = BASE + rng.randint(75, 150) * TICK  # at_or_above: 0.5 % to 10 % up
    return args


def with_trails(seed: int, steps: list[Any], opening: int, make_step: Any) -> None:
    """Insert this seed's `create_trail` steps into `steps` (in place): one right after the
    opening creates, up to two more after it (never between a snapshot and its crossing)."""
    rng = random.Random(seed * SALT)
    # Never between a snapshot and the crossing right after it (RELIABILITY 17's order).
    free = [at for at in range(opening + 1, len(steps) + 1) if steps[at - 1].kind != "snapshot"]
    extra = sorted(rng.sample(free, k=rng.randint(0, 2)))
    for at in reversed(extra):
        steps.insert(at, make_step("create_trail", trail_args(rng), 0.02))
    steps.insert(opening, make_step("create_trail", trail_args(rng), 0.02))


def trail_body(args: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    """The v2 body of a `create_trail` step; `order` is one INFY SELL order."""
    kind = args["kind"]
    trail: dict[str, Any] = {
        "kind": kind,
        "offset": rupees(args["offset"]) if kind == "price" else args["offset"],
    }
    if "activation" in args:
        trail["activation"] = rupees(args["activation"])
    if "step" in args:
        trail["step"] = rupees(args["step"])
    legs = [{"condition": {"trail": trail}, "orders": [order]}]
    if "target" in args:
        legs.append(
            {
                "condition": {"price": rupees(args["target"]), "direction": "at_or_above"},
                "orders": [order],
            }
        )
    return {"trigger_type": "oco" if "target" in args else "single", "legs": legs}


def trail_patch(shift: int, oco: bool) -> dict[str, Any]:
    """A `patch` of a trailing trigger: a new price offset (it starts afresh), the target
    kept."""
    offset = rupees(max(20 * TICK, min(150 * TICK, abs(shift) or 20 * TICK)))
    legs: list[dict[str, Any]] = [{"condition": {"trail": {"kind": "price", "offset": offset}}}]
    if oco:
        legs.append({})
    return {"legs": legs}


def trailing(record: TriggerRecord) -> bool:
    return any(record.trigger.trail(leg) is not None for leg in record.trigger.legs)


async def trailing_armed(
    db: Database, records: Sequence[TriggerRecord], price: int, high: int, low: int
) -> list[TriggerRecord]:
    """The trailing triggers the final push at `price` must still wait for: at `high` those
    whose written best is not yet `high`, at `low` every one still active."""
    active = [r for r in records if r.status is Status.ACTIVE and trailing(r)]
    if not active or price not in (high, low):
        return []
    if price == low:
        return active
    written = await TrailStates(db).read(r.id for r in active)
    waiting = []
    for record in active:
        states = [written.get((record.id, int(leg))) for leg in record.trigger.legs]
        if not any(s is not None and s.state.best == high for s in states):
            waiting.append(record)
    return waiting
