"""A cluster chaos schedule: seeded steps over three node processes, and nothing else.

RELIABILITY 6's campaign (`chaos_schedule`) plays one engine; this plays three
`hmt run --cluster` nodes (RELIABILITY 21, issue 16). A schedule depends only on
its seed: which instruments carry triggers, where their thresholds sit, which
node each fault hits and when it is undone. Node faults:

- `node_kill`: SIGKILL a node; a `restore` step starts it again a few steps on;
- `nats_cut`: the node's NATS connection through its own fault proxy, either
  `refuse` (cut, and new connects refused) or `stall` (a silent blackhole), for
  0.5-3.5 s (under or over the lease TTL); a `restore` step undoes it;
- `db_kill`: `pg_terminate_backend` on every PostgreSQL connection of the node.

Broker faults, today's campaign's (`chaos_schedule.REST_FAULTS` and its basket
fault's rate rule on `place_order`, the ticker's drop and stall). Every schedule
holds at least one of each node fault, and the REST fault `seed % 7`, so 7
consecutive seeds meet every REST fault kind.

Prices are per instrument, in wire units, relative to the instrument's price when
the schedule starts (its `base`): thresholds within 1 % of it, ticks within
1.5 %, the final pushes 5 % beyond either side.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tests.support.chaos_schedule import REST_FAULTS, _rest_rule

NODES = ("node-1", "node-2", "node-3")
WEIGHTS: dict[str, int] = {
    "tick": 24,
    "tick_at": 14,
    "sweep": 4,
    "create": 6,
    "node_kill": 4,
    "nats_cut": 4,
    "db_kill": 4,
    "rest_fault": 7,
    "rate_fault": 3,
    "ticker_drop": 3,
    "ticker_stall": 3,
}
NODE_FAULTS = ("node_kill", "nats_cut", "db_kill")
FAULT_KINDS = frozenset({*NODE_FAULTS, "rest_fault", "rate_fault", "ticker_drop", "ticker_stall"})
MAX_FAULTS = 7
INSTRUMENTS = (6, 10)  # instruments carrying triggers in one schedule
PER_INSTRUMENT = (1, 3)  # triggers created on each at the start


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    wait: float = 0.0

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind} {args}".strip()


@dataclass(frozen=True)
class ClusterSchedule:
    seed: int
    instruments: tuple[int, ...]  # indices into the test's instrument list
    steps: tuple[Step, ...]

    def faults(self) -> list[Step]:
        return [s for s in self.steps if s.kind in FAULT_KINDS]


def trigger_args(rng: random.Random) -> dict[str, Any]:
    """A single (either side, thresholds within 1 %) or, a third of the time, an oco.

    Offsets are in hundredths of a percent of the base (the runner puts them on
    the instrument's tick grid)."""
    side = rng.choice(["BUY", "SELL"])
    if rng.random() < 1 / 3:
        below, above = -rng.randint(5, 100), rng.randint(5, 100)
        stop, target = (below, above) if side == "SELL" else (above, below)
        return {"oco": True, "side": side, "stop": stop, "target": target}
    return {"oco": False, "side": side, "at": rng.randint(-100, 100)}


def generate(seed: int, instruments: int) -> ClusterSchedule:
    """Schedule `seed` over `instruments` instruments (indices 0..instruments-1)."""
    rng = random.Random(f"cluster:{seed}")
    chosen = tuple(sorted(rng.sample(range(instruments), rng.randint(*INSTRUMENTS))))
    steps = [
        Step("create", {"instrument": index, **trigger_args(rng)})
        for index in chosen
        for _ in range(rng.randint(*PER_INSTRUMENT))
    ]
    body: list[Step] = []
    faults = 0
    down: dict[str, int] = {}  # node -> steps left until its restore
    for _ in range(rng.randint(16, 24)):
        kind = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        if kind in FAULT_KINDS and faults >= MAX_FAULTS:
            kind = "tick"
        step = _step(rng, kind, chosen, down)
        body.append(step)
        faults += step.kind in FAULT_KINDS
        body += _restores(down)
    # Every schedule meets each node fault, and REST fault `seed % 7`.
    forced = [k for k in NODE_FAULTS if not any(s.kind == k for s in body)]
    for kind in forced:
        at = rng.randrange(len(body) // 2 + 1)
        step = _step(rng, kind, chosen, {})
        body[at:at] = [step, *_held(rng, step)]
    rule = dict(REST_FAULTS[seed % len(REST_FAULTS)], times=rng.randint(1, 2))
    at = rng.randrange(len(body) + 1)
    body[at:at] = [Step("rest_fault", rule, 0.05), _tick_at(rng)]
    for node in list(down):  # still down at the end: undone before the heal
        del down[node]
        body += _restore(node)
    return ClusterSchedule(seed, chosen, tuple(steps + body))


def _tick_at(rng: random.Random) -> Step:
    return Step("tick_at", {"target": rng.randrange(1000)}, _wait(rng))


def _wait(rng: random.Random) -> float:
    return round(rng.uniform(0.1, 0.5), 3)


def _step(rng: random.Random, kind: str, chosen: tuple[int, ...], down: dict[str, int]) -> Step:
    """One step of `kind`; a node fault on a node already faulted becomes a tick."""
    wait = _wait(rng)
    if kind in NODE_FAULTS:
        node = rng.choice(NODES)
        if node in down:
            return Step("tick", _tick(rng, chosen), wait)
        if kind == "node_kill":
            down[node] = rng.randint(2, 6)
            return Step(kind, {"node": node, "restore": True}, wait)
        if kind == "nats_cut":
            down[node] = rng.randint(4, 9)
            mode = rng.choice(["refuse", "stall"])
            # At least this long (the restore waits): shorter than the lease TTL (1.5 s)
            # the node may keep its leases over a reconnect, longer it loses them.
            seconds = round(rng.uniform(0.5, 3.5), 2)
            return Step(
                kind, {"node": node, "mode": mode, "seconds": seconds, "restore": True}, wait
            )
        return Step(kind, {"node": node}, wait)
    match kind:
        case "tick":
            return Step(kind, _tick(rng, chosen), wait)
        case "tick_at":
            return Step(kind, {"target": rng.randrange(1000)}, wait)
        case "sweep":
            return Step(kind, {"instrument": rng.choice(chosen), "up": rng.random() < 0.5}, wait)
        case "create":
            return Step(kind, {"instrument": rng.choice(chosen), **trigger_args(rng)}, wait)
        case "rest_fault":
            return Step(kind, _rest_rule(rng, kind, {}), wait)
        case "rate_fault":
            # The campaign's basket fault: a place_order rule hitting each request with a
            # chance, then a sweep: the fault falls on some of many orders.
            rule = _rest_rule(rng, "basket_fault", {})["rule"]
            sweep = {"instrument": rng.choice(chosen), "up": rng.random() < 0.5}
            return Step(kind, {"rule": rule, **sweep}, wait)
        case "ticker_stall":
            return Step(kind, {"seconds": round(rng.uniform(0.3, 1.2), 2)}, wait)
        case _:  # ticker_drop
            return Step(kind, {}, wait)


def _tick(rng: random.Random, chosen: tuple[int, ...]) -> dict[str, Any]:
    return {"instrument": rng.choice(chosen), "at": rng.randint(-150, 150)}


def _held(rng: random.Random, step: Step) -> list[Step]:
    """A forced node fault: a few ticks while it lasts, then its restore."""
    if "restore" not in step.args:
        return []
    ticks = [_tick_at(rng) for _ in range(4)]
    return ticks + _restore(step.args["node"])


def _restores(down: dict[str, int]) -> list[Step]:
    out: list[Step] = []
    for node in list(down):
        down[node] -= 1
        if down[node] <= 0:
            del down[node]
            out += _restore(node)
    return out


def _restore(node: str) -> list[Step]:
    return [Step("restore", {"node": node}, 0.05)]
