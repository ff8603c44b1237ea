"""RELIABILITY 6: a seeded chaos campaign against `hmt run`, the simulator and the database.

Schedules are played in chunks (one engine process per chunk, killed and
restarted by the schedules that ask for it), on PostgreSQL and, for every
fifth chunk, SQLite. Each schedule is judged on its own by the history checker
(`tests.support.chaos_oracle`); the campaign's report is printed at the end.

    make soak SCHEDULES=200                                  # a longer campaign
    HMT_CHAOS_SEED=<n> HMT_CHAOS_SCHEDULES=1 make soak          # replay one schedule
    HMT_CHAOS_BACKEND=sqlite ...                             # ... on the backend it ran on
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hmt.sim.simulator import Simulator
from hmt.store.tokens import TokenStore
from tests.support.chaos_oracle import CLASSES, Verdict
from tests.support.chaos_runner import USER, Outcome, chaos_runner
from tests.support.chaos_schedule import generate
from tests.support.history_audit import open_store
from tests.support.postgres import private_database

SCHEDULES = int(os.environ.get("HMT_CHAOS_SCHEDULES", "30"))
SEED = int(os.environ.get("HMT_CHAOS_SEED") or random.randrange(1 << 31))
PER_CHUNK = 6  # schedules per engine process (and per pytest test, within its timeout)
BACKEND = os.environ.get("HMT_CHAOS_BACKEND", "")  # force one backend (replaying a seed)


def chunks() -> list[tuple[str, list[int]]]:
    """(backend, schedule seeds) per chunk: schedule i has seed SEED + i."""
    out = []
    for number, start in enumerate(range(0, SCHEDULES, PER_CHUNK)):
        backend = BACKEND or ("sqlite" if number % 5 == 4 else "postgresql")
        out.append((backend, [SEED + i for i in range(start, min(start + PER_CHUNK, SCHEDULES))]))
    return out


CHUNKS = chunks()


@dataclass
class Campaign:
    outcomes: list[Outcome] = field(default_factory=list)

    def report(self) -> str:
        total = Verdict()
        faults: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.merge(outcome.verdict)
            faults.update(outcome.faults)
            hits.update(outcome.hits)
        backends = Counter(o.schedule.backend for o in self.outcomes)
        seeds = [o.schedule.seed for o in self.outcomes]
        lines = [
            f"RELIABILITY 6 chaos campaign: seed={SEED} schedules run={len(self.outcomes)} "
            f"({dict(backends)}) seeds={min(seeds, default=0)}..{max(seeds, default=0)}",
            f"faults injected={sum(faults.values())} by kind={dict(sorted(faults.items()))}",
            f"faults met (REST requests hit, database connections cut)="
            f"{dict(sorted(hits.items()))}",
            f"triggers={sum(o.triggers for o in self.outcomes)} "
            f"fired={sum(o.fired for o in self.outcomes)} "
            f"orders placed={sum(o.orders for o in self.outcomes)} "
            f"statuses={dict(sorted(total.statuses.items()))}",
            "classes: "
            + " ".join(f"{c}={total.counts[c]}" for c in CLASSES)
            + f" orphan-orders={len(total.orphans)}",
            f"duplicates={total.counts['duplicated']} (must be 0) lost={total.counts['lost']} "
            f"(must be 0) unexpected={total.counts['unexpected'] + len(total.orphans)} (0) "
            f"oco-double={total.counts['oco-double']} (0)",
            f"rows left triggered and settled by a restart's recovery="
            f"{sum(o.stuck_restarts for o in self.outcomes)}; "
            f"schedule seconds p50/max={_p50_max([o.seconds for o in self.outcomes])}",
        ]
        return "\n".join(lines)


def _p50_max(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.1f}/{ordered[-1]:.1f}"


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    result = Campaign()
    yield result
    print("\n" + result.report())


@pytest.fixture(scope="module")
def chaos_pg_url() -> Iterator[str]:
    with private_database("hmt_chaos") as url:
        yield url


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh SQLite file, or the campaign's private PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'hmt.db'}"
    url: str = request.getfixturevalue("chaos_pg_url")
    return url


def describe(outcome: Outcome) -> str:
    schedule, verdict = outcome.schedule, outcome.verdict
    classes = " ".join(f"{c}={n}" for c, n in sorted(verdict.counts.items()))
    return (
        f"  seed={schedule.seed} [{schedule.backend}] steps={len(schedule.steps)} "
        f"faults={dict(outcome.faults)} met={dict(outcome.hits)} "
        f"triggers={outcome.triggers} fired={outcome.fired} "
        f"orders={outcome.orders} {classes} orphans={len(verdict.orphans)} "
        f"{outcome.seconds:.1f}s"
    )


def failure(outcome: Outcome, engine_log: str) -> str:
    schedule = outcome.schedule
    lines = [
        f"chaos schedule seed={schedule.seed} [{schedule.backend}] is not valid.",
        f"replay: HMT_CHAOS_SEED={schedule.seed} HMT_CHAOS_SCHEDULES=1 "
        f"HMT_CHAOS_BACKEND={schedule.backend} make soak",
        "steps:",
        *[f"    {step.describe()} (then {step.wait}s)" for step in schedule.steps],
        "failures:",
        *[f"    {j.trigger_id} {j.classes} {j.why}" for j in outcome.verdict.failures()],
        f"orphan orders: {outcome.verdict.orphans}",
        f"api calls: {dict(outcome.api)}",
        "engine log (tail):",
        engine_log,
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("backend", "seeds"), CHUNKS, ids=[f"chunk{i}" for i in range(len(CHUNKS))]
)
async def test_chaos_schedules_place_every_due_trigger_exactly_once(
    backend: str,
    seeds: list[int],
    campaign: Campaign,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Every schedule ends valid: 0 duplicated, 0 lost, 0 unexpected, 0 oco-double."""
    print(f"\nRELIABILITY 6 [{backend}] campaign seed={SEED} schedule seeds={seeds}")
    async with (
        Simulator(seed=seeds[0], heartbeat_interval=0.2) as sim,
        open_store(database_url) as store,
    ):
        token = (await TokenStore(store.db).issue(USER)).token
        async with chaos_runner(sim, store, database_url, tmp_path, token) as runner:
            for seed in seeds:
                outcome = await runner.run(generate(seed, backend))
                campaign.outcomes.append(outcome)
                print(describe(outcome))
                assert outcome.verdict.valid, failure(outcome, runner.slot.output())
