"""What the chaos test modules share: chunks of seeds, one chunk's run, the report.

RELIABILITY 6 (`tests/chaos/test_campaign.py`) and RELIABILITY 17
(`tests/chaos/test_lost_commits.py`) play the same schedules through the same
runner; they differ in how many schedules lose commits and on which stores.
Either broker's simulator plays the broker (`broker`: "kite" or "upstox").
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from hmt.store.tokens import TokenStore
from tests.support.chaos_oracle import CLASSES, Verdict
from tests.support.chaos_runner import USER, ChaosRunner, Outcome, chaos_runner
from tests.support.chaos_schedule import generate
from tests.support.history_audit import open_store
from tests.support.pg_cluster import PgCluster
from tests.support.snapshots import snapshots_for

Chunk = tuple[str, list[int]]  # (backend, schedule seeds)


def chunks(seed: int, schedules: int, per_chunk: int, backends: list[str]) -> list[Chunk]:
    """Schedule i has seed `seed + i`; chunk n runs on `backends[n % len(backends)]`."""
    out = []
    for number, start in enumerate(range(0, schedules, per_chunk)):
        stop = min(start + per_chunk, schedules)
        out.append((backends[number % len(backends)], [seed + i for i in range(start, stop)]))
    return out


@dataclass
class Campaign:
    title: str
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)

    def report(self) -> str:
        total = Verdict()
        faults: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        created: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.merge(outcome.verdict)
            faults.update(outcome.faults)
            hits.update(outcome.hits)
            created.update(outcome.created)
        backends = Counter(o.schedule.backend for o in self.outcomes)
        seeds = [o.schedule.seed for o in self.outcomes]
        rolled = [o for o in self.outcomes if o.rollbacks]
        lines = [
            f"{self.title}: seed={self.seed} schedules run={len(self.outcomes)} "
            f"({dict(backends)}) seeds={min(seeds, default=0)}..{max(seeds, default=0)}",
            f"faults injected={sum(faults.values())} by kind={dict(sorted(faults.items()))}",
            f"faults met (REST requests hit, database connections cut)="
            f"{dict(sorted(hits.items()))}",
            f"triggers={sum(o.triggers for o in self.outcomes)} "
            f"fired={sum(o.fired for o in self.outcomes)} "
            f"orders at the sim={sum(o.orders for o in self.outcomes)} "
            f"statuses={dict(sorted(total.statuses.items()))}",
            f"created through the API={dict(sorted(created.items()))}; v2: "
            f"baskets={sum(o.baskets for o in self.outcomes)} "
            f"(their orders at the sim={sum(o.basket_orders for o in self.outcomes)}, "
            f"of which met a fault={sum(o.basket_orders_faulted for o in self.outcomes)}) "
            f"watching NIFTY 50={sum(o.watching for o in self.outcomes)}; "
            f"brackets={sum(len(o.brackets) for o in self.outcomes)} "
            f"(exits armed={sum(o.bracket_exits for o in self.outcomes)})",
            f"lost commits: rollbacks={sum(o.rollbacks for o in self.outcomes)} "
            f"({dict(Counter(o.schedule.backend for o in rolled))}) "
            f"claims lost={sum(len(o.lost_claims) for o in self.outcomes)} "
            f"outcomes lost={sum(o.lost_outcomes for o in self.outcomes)} "
            f"rows erased={sum(len(o.erased) for o in self.outcomes)} "
            f"(their orders at the sim={sum(o.erased_orders for o in self.outcomes)})",
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


def describe(outcome: Outcome) -> str:
    schedule, verdict = outcome.schedule, outcome.verdict
    classes = " ".join(f"{c}={n}" for c, n in sorted(verdict.counts.items()))
    lost = (
        f"rollbacks={outcome.rollbacks} claims-lost={len(outcome.lost_claims)} "
        f"outcomes-lost={outcome.lost_outcomes} erased={len(outcome.erased)} "
        if outcome.rollbacks
        else ""
    )
    return (
        f"  seed={schedule.seed} [{schedule.backend}] steps={len(schedule.steps)} "
        f"faults={dict(outcome.faults)} met={dict(outcome.hits)} {lost}"
        f"triggers={outcome.triggers} fired={outcome.fired} "
        f"baskets={outcome.baskets} (orders {outcome.basket_orders}, "
        f"faulted {outcome.basket_orders_faulted}) "
        f"watching={outcome.watching} trailing={outcome.trailing} "
        f"orders={outcome.orders} {classes} orphans={len(verdict.orphans)} "
        f"{outcome.seconds:.1f}s"
    )


def failure(outcome: Outcome, engine_log: str, replay: str) -> str:
    schedule = outcome.schedule
    lines = [
        f"chaos schedule seed={schedule.seed} [{schedule.backend}] is not valid.",
        f"replay: HMT_CHAOS_SEED={schedule.seed} HMT_CHAOS_SCHEDULES=1 "
        f"HMT_CHAOS_BACKEND={schedule.backend} {replay}",
        "steps:",
        *[f"    {step.describe()} (then {step.wait}s)" for step in schedule.steps],
        "failures:",
        *[f"    {j.trigger_id} {j.classes} {j.why}" for j in outcome.verdict.failures()],
        *[
            f"    story of {trigger_id}:\n" + "\n".join(f"        {line}" for line in story)
            for trigger_id, story in outcome.stories.items()
        ],
        f"orphan orders: {outcome.orphan_orders}",
        f"claims lost to the rollback (tags): {sorted(outcome.lost_claims)}",
        f"api calls: {dict(outcome.api)}",
        "engine log (tail):",
        engine_log,
    ]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def runner_for(
    database_url: str,
    cluster: PgCluster | None,
    log_dir: Path,
    sim_seed: int,
    broker: str = "kite",
) -> AsyncIterator[ChaosRunner]:
    """A simulator, the test's store, a user token and a runner with the store's snapshots."""
    simulator = (
        UpstoxSim(seed=sim_seed)
        if broker == "upstox"
        else Simulator(seed=sim_seed, heartbeat_interval=0.2)
    )
    async with simulator as sim, open_store(database_url) as store:
        token = (await TokenStore(store.db).issue(USER)).token
        snapshots = snapshots_for(database_url, cluster)
        async with chaos_runner(sim, store, database_url, log_dir, token, snapshots) as runner:
            yield runner


async def run_chunk(
    campaign: Campaign,
    backend: str,
    seeds: list[int],
    database_url: str,
    cluster: PgCluster | None,
    log_dir: Path,
    *,
    rollback_share: float,
    replay: str,
    broker: str = "kite",
) -> None:
    """One engine process (restarted as the schedules ask) plays `seeds`; each must be valid."""
    print(
        f"\n{campaign.title} [{broker}, {backend}] campaign seed={campaign.seed} "
        f"schedule seeds={seeds}"
    )
    async with runner_for(database_url, cluster, log_dir, seeds[0], broker) as runner:
        for seed in seeds:
            outcome = await runner.run(generate(seed, backend, rollback_share))
            campaign.outcomes.append(outcome)
            print(describe(outcome))
            assert outcome.verdict.valid, failure(outcome, runner.slot.output(), replay)
