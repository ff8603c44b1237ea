"""A chaos schedule: the seeded list of steps one run plays, and nothing else.

A schedule depends only on its seed and backend, so `HMT_CHAOS_SEED=<n>`
replays the same steps (the timing of a real engine still varies). Steps name
triggers by their creation index (taken modulo the number created), so a
step never depends on what an earlier one returned.

Prices are INFY's, in wire units (paise) on its 0.10 tick grid, around 1500.00:
triggers sit within 1 % of it, ticks wander within 1.5 % (or land exactly on a
trigger's threshold), and the final push goes 5 % beyond either side.

Trigger model v2 (issue 13) adds two creates, made through the v2 API body:
`create_basket`, a leg of 2-5 orders on INFY's price (stated directions), some
of them on NIFTY options; and `create_watch`, orders on INFY or NIFTY options
while the legs watch NIFTY 50 (around 25000.00, thresholds within 1 % of it on
a 5.00 grid, ticks within 1.5 %, the final push 5 % beyond). An order names
its instrument as `"INFY"` or `{"option": n}`, the n-th NIFTY option of the
simulator's universe (modulo their number), so the steps never depend on the
day the simulator lists its expiries for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hmt.core.types import Side
from tests.support.chaos_trails import with_trails

BASE = 150_000  # INFY at 1500.00
TICK = 10  # INFY's tick size in the simulator's universe: 0.10
HIGH = BASE + 750 * TICK  # 1575.00: beyond every up-leg
LOW = BASE - 750 * TICK  # 1425.00: beyond every down-leg
# NIFTY 50, the watched instrument of `create_watch`: its price, the grid its legs sit
# on (5.00: far coarser than its 0.05 tick, so thresholds are round numbers), the final
# pushes 5 % beyond either side.
WATCH_BASE = 2_500_000  # 25000.00
WATCH_STEP = 500
WATCH_HIGH = WATCH_BASE + 250 * WATCH_STEP  # 26250.00
WATCH_LOW = WATCH_BASE - 250 * WATCH_STEP  # 23750.00
BASKET = (2, 5)  # orders in a `create_basket` leg
WATCHED_ORDERS = (1, 3)  # orders in a `create_watch` leg

# The engine's REST timeout in a campaign; `accept_then_delay` answers after twice this.
KITE_TIMEOUT_MS = 400
REST_FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "error", "endpoint": "place_order", "error_type": "NetworkException"},
    {"kind": "error", "endpoint": "place_order", "error_type": "NetworkException", "status": 429},
    {"kind": "accept_then_close", "endpoint": "place_order"},
    {"kind": "accept_then_delay", "endpoint": "place_order", "delay": 2 * KITE_TIMEOUT_MS / 1000},
    {"kind": "never_answer", "endpoint": "place_order"},
    {"kind": "error", "endpoint": "orders", "error_type": "NetworkException"},
    {"kind": "accept_then_error", "endpoint": "place_order", "error_type": "GeneralException"},
)
# Weights of the step kinds after the opening creates.
WEIGHTS: dict[str, int] = {
    "tick": 30,
    "tick_at": 8,
    "create": 10,
    "create_oco": 6,
    "create_basket": 6,
    "create_watch": 6,
    "tick_watch": 10,
    "patch": 7,
    "pause": 4,
    "resume": 4,
    "cancel": 4,
    "ticker_drop": 3,
    "ticker_stall": 3,
    "rest_fault": 7,
    "basket_fault": 4,
    "db_kill": 3,
    "engine_kill": 2,
}
FAULT_KINDS = frozenset(
    {
        "ticker_drop",
        "ticker_stall",
        "rest_fault",
        "basket_fault",
        "db_kill",
        "engine_kill",
        "rollback",
    }
)
# `basket_fault`: a REST rule on `place_order` that hits each request with this chance
# (once or twice), then a tick exactly on a basket's threshold: the fault falls on
# single orders of the basket, not only its first.
BASKET_FAULT_RATE = 0.4
MAX_FAULTS = 4
# RELIABILITY 17, lost commits: the share of schedules that snapshot the database,
# let claims and orders happen, then SIGKILL the engine, restore the snapshot and
# restart it. The campaign of RELIABILITY 6 mixes it in; test 17 asks for it always.
ROLLBACK_SHARE = 0.25
ROLLBACK_AFTER = (2, 5)  # steps between the crossing after the snapshot and the rollback


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    wait: float = 0.0  # seconds before the next step

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind} {args}".strip()


@dataclass(frozen=True)
class Schedule:
    seed: int
    backend: str  # "postgresql" or "sqlite"
    steps: tuple[Step, ...]

    def faults(self) -> list[Step]:
        return [s for s in self.steps if s.kind in FAULT_KINDS]


def grid(rng: random.Random, around: int, ticks: int) -> int:
    """A price on INFY's grid within `ticks` ticks of `around`."""
    return around + rng.randint(-ticks, ticks) * TICK


def single(rng: random.Random) -> dict[str, Any]:
    return {
        "side": rng.choice([Side.BUY.value, Side.SELL.value]),
        "price": grid(rng, BASE, 100),
        "limit": rng.random() < 0.25,
    }


def oco(rng: random.Random) -> dict[str, Any]:
    """A SELL oco protects a long (stop below, target above); a BUY oco the reverse."""
    side = rng.choice([Side.BUY.value, Side.SELL.value])
    below = BASE - rng.randint(5, 100) * TICK
    above = BASE + rng.randint(5, 100) * TICK
    stop, target = (below, above) if side == Side.SELL.value else (above, below)
    return {"side": side, "stop": stop, "target": target}


def order(rng: random.Random, option_share: float) -> dict[str, Any]:
    """One order of a v2 leg: INFY, or (`option_share` of them) a NIFTY option."""
    instrument: Any = {"option": rng.randrange(1000)} if rng.random() < option_share else "INFY"
    return {
        "instrument": instrument,
        "side": rng.choice([Side.BUY.value, Side.SELL.value]),
        "limit": rng.random() < 0.25,
    }


def v2_legs(rng: random.Random, base: int, step: int, orders: tuple[int, int]) -> dict[str, Any]:
    """A v2 trigger's legs with stated directions, thresholds within 1 % of `base` on a
    `step` grid: a single (either direction) or, a third of the time, an oco (an
    at_or_above leg above an at_or_below one, in either order)."""
    share = 0.5 if orders == BASKET else 0.4

    def leg(direction: str, price: int) -> dict[str, Any]:
        count = rng.randint(*orders)
        return {
            "direction": direction,
            "price": price,
            "orders": [order(rng, share) for _ in range(count)],
        }

    def watching_infy(legs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Without `watch` a trigger watches its first leg's first order's instrument:
        a basket's is INFY, so its legs' INFY prices mean what they say."""
        if orders == BASKET:
            legs[0]["orders"][0]["instrument"] = "INFY"
        return legs

    span = base // 100 // step  # 1 % of the base, in steps
    if rng.random() < 1 / 3:
        below = leg("at_or_below", base - rng.randint(span // 20, span) * step)
        above = leg("at_or_above", base + rng.randint(span // 20, span) * step)
        legs = [below, above] if rng.random() < 0.5 else [above, below]
        return {"oco": True, "legs": watching_infy(legs)}
    direction = rng.choice(["at_or_above", "at_or_below"])
    single = leg(direction, base + rng.randint(-span, span) * step)
    return {"oco": False, "legs": watching_infy([single])}


def basket(rng: random.Random) -> dict[str, Any]:
    """`create_basket`: 2-5 orders a leg on INFY's price, about half on NIFTY options."""
    return v2_legs(rng, BASE, TICK, BASKET)


def watch(rng: random.Random) -> dict[str, Any]:
    """`create_watch`: 1-3 orders a leg (INFY or NIFTY options) on NIFTY 50's price."""
    return v2_legs(rng, WATCH_BASE, WATCH_STEP, WATCHED_ORDERS)


def bracket(rng: random.Random) -> dict[str, Any]:
    """`create_bracket` (issue 14): an INFY entry within 1 % of BASE, long (BUY, fires
    up) or short (SELL, fires down), its target 0.1-1 % beyond the entry and its stop as
    far the other way: the final push (1575.00, then 1425.00) fires the entry and then
    an exit, whichever the schedule reaches first."""
    side = rng.choice(["BUY", "SELL"])
    span = BASE // 100 // TICK
    price = BASE + rng.randint(0, span) * TICK * (-1 if side == "BUY" else 1)
    away = rng.randint(span // 10, span) * TICK
    toward = rng.randint(span // 10, span) * TICK
    up = 1 if side == "BUY" else -1
    return {"side": side, "price": price, "target": price + up * away, "stop": price - up * toward}


def generate(seed: int, backend: str, rollback_share: float = ROLLBACK_SHARE) -> Schedule:
    """The steps of schedule `seed`: a few creates, then a random interleaving.

    With probability `rollback_share` the schedule also holds one lost-commit
    fault (RELIABILITY 17): a `snapshot`, a crossing, and a `rollback` to it.
    """
    rng = random.Random(seed)
    steps: list[Step] = [Step("tick", {"price": grid(rng, BASE, 20)}, 0.02)]
    steps += [Step("create", single(rng), 0.02) for _ in range(rng.randint(2, 4))]
    steps.append(Step("create_oco", oco(rng), 0.02))
    # Every schedule has a basket and a watched trigger from the start (v2, issue 13).
    steps.append(Step("tick_watch", {"price": WATCH_BASE + rng.randint(-20, 20) * WATCH_STEP}))
    steps.append(Step("create_basket", basket(rng), 0.02))
    steps.append(Step("create_watch", watch(rng), 0.02))
    opening = len(steps)
    kinds = list(WEIGHTS)
    if backend != "postgresql":
        kinds.remove("db_kill")  # SQLite has no server connection to cut
    weights = [WEIGHTS[k] for k in kinds]
    faults, killed_at = 0, -1
    for _ in range(rng.randint(12, 20)):
        kind = rng.choices(kinds, weights)[0]
        if kind in FAULT_KINDS and (faults >= MAX_FAULTS or killed_at >= 0):
            kind = "tick"  # budget spent, or the engine is already down once
        steps.append(Step(kind, _args(rng, kind), round(rng.uniform(0.03, 0.2), 3)))
        faults += kind in FAULT_KINDS
        if kind == "engine_kill":
            killed_at = len(steps)
        if killed_at >= 0 and len(steps) - killed_at == 4:
            steps.append(Step("engine_restart", {}, 0.05))
    if rng.random() < rollback_share:
        _lose_commits(rng, steps, opening)
    # A bracket in every schedule (issue 14), from its own generator: the other steps are
    # those each seed made before brackets existed.
    steps.insert(opening, Step("create_bracket", bracket(random.Random(f"{seed}:bracket")), 0.02))
    # Trailing stops (issue 14), from a stream of their own: the rest stays as it was.
    with_trails(seed, steps, opening, Step)
    return Schedule(seed, backend, tuple(steps))


def _lose_commits(rng: random.Random, steps: list[Step], opening: int) -> None:
    """Insert a snapshot early, a crossing right after it, and the rollback a few steps on.

    The snapshot comes within the first steps after the opening creates (most
    triggers still armed), and the crossing is a sweep to 1575.00 or 1425.00
    and NIFTY 50 with it (every armed leg on that side fires) or a tick on one
    trigger's threshold:
    claims and orders the rollback then takes from the database, not the broker.
    """
    at = rng.randint(opening, opening + 3)
    after = at + 2 + rng.randint(*ROLLBACK_AFTER)
    high = rng.random() < 0.5
    sweep = {"price": HIGH, "watch": WATCH_HIGH} if high else {"price": LOW, "watch": WATCH_LOW}
    crossing = (
        Step("tick", sweep, 0.1)
        if rng.random() < 2 / 3
        else Step("tick_at", {"target": rng.randrange(1000)}, 0.1)
    )
    steps.insert(at, Step("snapshot", {}, 0.02))
    steps.insert(at + 1, crossing)
    steps.insert(after, Step("rollback", {}, 0.05))


def _rest_rule(rng: random.Random, kind: str, target: dict[str, Any]) -> dict[str, Any]:
    """A REST fault's rule; for a `basket_fault` one on `place_order` hitting each
    request with BASKET_FAULT_RATE, with the basket it is aimed at."""
    if kind == "rest_fault":
        rule = dict(rng.choice(REST_FAULTS))
        rule["times"] = rng.randint(1, 2)
        return rule
    on_orders = [f for f in REST_FAULTS if f["endpoint"] == "place_order"]
    rule = dict(rng.choice(on_orders))
    rule.update(times=rng.randint(1, 2), rate=BASKET_FAULT_RATE)
    return {**target, "rule": rule}


def _args(rng: random.Random, kind: str) -> dict[str, Any]:
    target = {"target": rng.randrange(1000)}
    match kind:
        case "tick":
            return {"price": grid(rng, BASE, 150)}
        case "tick_at":
            return target
        case "tick_watch":
            return {"price": WATCH_BASE + rng.randint(-75, 75) * WATCH_STEP}
        case "create":
            return single(rng)
        case "create_oco":
            return oco(rng)
        case "create_basket":
            return basket(rng)
        case "create_watch":
            return watch(rng)
        case "patch":
            return {**target, "shift": rng.randint(-60, 60) * TICK}
        case "pause" | "resume" | "cancel":
            return target
        case "ticker_stall":
            return {"seconds": round(rng.uniform(0.3, 1.2), 2)}
        case "rest_fault" | "basket_fault":
            return _rest_rule(rng, kind, target)
        case _:
            return {}
