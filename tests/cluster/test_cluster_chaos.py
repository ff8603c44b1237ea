"""RELIABILITY 21 (issue 16's first acceptance item): seeded chaos over three cluster nodes.

Three `hmt run --cluster` processes on loopback, a private nats-server, a private
PostgreSQL database, the Kite simulator in this process (the broker and the judge).
Each node reaches NATS through its own fault proxy. Each schedule
(`tests.support.cluster_chaos`) creates singles and ocos over several instruments,
then interleaves price pushes that cross them with node SIGKILLs (restarted a few
steps on), NATS cuts (refused or stalled, then restored), kills of a node's
PostgreSQL connections (`pg_terminate_backend` on the backends whose client port is
one of the node's sockets) and the broker faults of RELIABILITY 6's campaign (REST
faults, the rate rule on `place_order`, ticker drops and stalls).

Then the runner heals (faults off, proxies restored, dead nodes started, every
partition leased by its preferred node), pushes each instrument 5 % above and then
5 % below every leg until nothing is armed at that price or in flight, and hands the
rows, their histories and the simulator's order book to RELIABILITY 6's oracle
(`tests.support.chaos_oracle`): 0 duplicated, 0 lost, 0 unexpected, 0 oco-double,
0 bad histories, 0 orphan orders.

    HMT_CLUSTER_SCHEDULES=30 make soak                     # (make soak runs 30)
    HMT_CHAOS_SEED=<n> HMT_CLUSTER_SCHEDULES=1 .venv/bin/pytest -s \\
        tests/cluster/test_cluster_chaos.py                  # replay one schedule
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hmt.cluster.connection import connect
from hmt.cluster.leases import read_leases
from hmt.core.lifecycle import Status
from hmt.core.model import Trigger
from hmt.core.partitions import assignment
from hmt.core.rules import legs_holding
from hmt.core.types import Exchange, InstrumentToken, Side, TriggerId
from hmt.sim.simulator import Simulator
from hmt.sim.universe import Instrument
from hmt.store.records import TriggerRecord
from hmt.store.tokens import TokenStore
from hmt.store.triggers import TriggerStore
from tests.support.chaos_oracle import CLASSES, Verdict, judge_all, orphans, tags_of
from tests.support.chaos_runner import SETTINGS, USER
from tests.support.cluster_chaos import (
    FAULT_KINDS,
    NODE_FAULTS,
    NODES,
    ClusterSchedule,
    Step,
    generate,
)
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.factories import make_oco, make_trigger
from tests.support.fault_proxy import FaultProxy
from tests.support.history_audit import open_store
from tests.support.postgres import private_database

SCHEDULES = int(os.environ.get("HMT_CLUSTER_SCHEDULES", "2"))
SEED = int(os.environ.get("HMT_CHAOS_SEED") or random.randrange(1 << 31))
# A schedule takes 15-30 s here (its SIGKILLed node's restart, the heal, the pushes).
pytestmark = [pytest.mark.pg, pytest.mark.timeout(120 + 60 * SCHEDULES)]
PARTITIONS = 16
TTL_S = 1.5  # short, so a kill or a cut moves partitions in about 2 s
NODE_SETTINGS: dict[str, object] = {
    **SETTINGS,  # the campaign's: REST timeout 400 ms, 20 retries, no API rate limit
    # The least the REST timeout allows (2 x 400 + 2000 ms): a SIGKILLed node's claims
    # in flight are adopted by a survivor's claim sweep within seconds.
    "claim_lease_ms": 2 * int(str(SETTINGS["kite_timeout_ms"])) + 2000,
    "cluster_partitions": PARTITIONS,
    "cluster_lease_ttl_s": TTL_S,
}
SETTLE_WITHIN = 40.0  # seconds for a final push to settle every trigger
# A node's PostgreSQL connections: the engine's pools and its change-feed listener.
KILL_SQL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name LIKE 'hmt-%' "
    "AND client_port = ANY($1::int[])"
)


def client_ports(pid: int) -> list[int]:
    """The local TCP ports of process `pid`'s sockets (its fds' inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                columns = line.split()
                if columns[9] in inodes:
                    ports.append(int(columns[1].rsplit(":", 1)[1], 16))
    return ports


def rupees(instrument: Instrument, units: int) -> Decimal:
    return Decimal(units) / instrument.divisor


class Cluster:
    """The three nodes, each behind its own NATS proxy: killed, cut, restored."""

    def __init__(
        self, sim: Simulator, pg_url: str, nats_url: str, proxies: dict[str, FaultProxy], logs: Path
    ) -> None:
        self.sim, self.pg_url, self.nats_url, self.logs = sim, pg_url, nats_url, logs
        self.proxies = proxies
        self.nodes: dict[str, EngineProcess] = {}
        self._contexts: dict[str, contextlib.AbstractAsyncContextManager[EngineProcess]] = {}
        self.starts: Counter[str] = Counter()
        self.started: list[EngineProcess] = []  # every process, killed ones too (their logs)
        self.fault: dict[str, str | None] = dict.fromkeys(NODES)
        self.until: dict[str, float] = {}  # a NATS cut lasts at least until then

    async def start(self, node: str) -> EngineProcess:
        await self.close(node)
        self.starts[node] += 1
        context = engine_process(
            self.sim,
            self.pg_url,
            self.logs,
            name=f"{node}-{self.starts[node]}",
            engine_id=node,
            cluster_url=f"nats://127.0.0.1:{self.proxies[node].port}",
            **NODE_SETTINGS,
        )
        self.nodes[node] = await context.__aenter__()
        self.started.append(self.nodes[node])
        self._contexts[node] = context
        return self.nodes[node]

    async def close(self, node: str) -> None:
        """SIGKILL (if still running) and reap."""
        context = self._contexts.pop(node, None)
        if context is not None:
            await context.__aexit__(None, None, None)

    async def aclose(self) -> None:
        for node in list(self._contexts):
            await self.close(node)
        for proxy in self.proxies.values():
            proxy.heal()

    def free(self, wanted: str) -> str | None:
        """`wanted`, or another node, that no node fault holds now."""
        order = [wanted, *[n for n in NODES if n != wanted]]
        return next((n for n in order if self.fault[n] is None), None)

    async def kill(self, node: str) -> None:
        self.nodes[node].kill()
        await self.nodes[node].exited(within=10)
        self.fault[node] = "killed"

    async def cut(self, node: str, mode: str, seconds: float) -> None:
        proxy = self.proxies[node]
        if mode == "refuse":
            await proxy.refuse()  # open connections cut, new ones refused
        else:
            proxy.stall()  # a silent partition
        self.fault[node] = mode
        self.until[node] = time.monotonic() + seconds

    async def restore(self, node: str) -> str | None:
        """Undo the node's fault; `"<fault> took its leases"` if it held no partition by
        then (the fault moved its partitions to the others)."""
        fault = self.fault[node]
        if fault in ("refuse", "stall"):
            await asyncio.sleep(max(0.0, self.until.pop(node) - time.monotonic()))
        moved = None
        if fault is not None:
            _, held = await self.holders()
            moved = None if node in held.values() else f"{fault} took its leases"
        match fault:
            case "killed":
                await self.start(node)  # not waited for: the schedule goes on meanwhile
            case "refuse":
                await self.proxies[node].listen()
            case "stall":
                self.proxies[node].heal()  # the stalled connection stays dead: it reconnects
        self.fault[node] = None
        return moved

    async def db_kill(self, node: str) -> int:
        """Terminate every PostgreSQL backend of the node; how many."""
        process = self.nodes[node]
        if not process.alive:
            return 0
        ports = client_ports(process.proc.pid)
        conn = await asyncpg.connect(self.pg_url)
        try:
            return int(await conn.fetchval(KILL_SQL, ports))
        finally:
            await conn.close()

    async def holders(self) -> tuple[list[str], dict[int, str]]:
        nc = await connect(self.nats_url, TTL_S, persistent=False)
        try:
            nodes, held = await read_leases(nc)
        finally:
            await nc.close()
        return nodes, {p: holder for p, (holder, _) in held.items()}

    async def heal(self, store: TriggerStore, headers: dict[str, str]) -> None:
        """Every node fault undone, every node serving, every partition with its preferred
        node and the nodes' books adding up to the active rows."""
        for node in NODES:
            await self.restore(node)
        for process in self.nodes.values():
            await process.ready(within=60)

        async def settled() -> bool:
            nodes, held = await self.holders()
            if set(nodes) != set(NODES) or held != assignment(PARTITIONS, set(NODES)):
                return False
            counts = []
            async with httpx.AsyncClient(timeout=2) as client:
                for process in self.nodes.values():
                    try:
                        response = await client.get(f"{process.url}/stats", headers=headers)
                    except httpx.TransportError:
                        return False
                    if response.status_code != 200:
                        return False
                    counts.append(int(response.json()["active_triggers"]))
            return sum(counts) == await active_rows(store)

        try:
            await eventually(settled, within=60, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"cluster not settled after healing:\n{await self.diagnosis(store, headers)}"
                f"\n{self.output()}"
            ) from None

    async def diagnosis(self, store: TriggerStore, headers: dict[str, str]) -> str:
        """What `heal` compares, each part named: the holders against the assignment,
        each node's book and state against the active rows."""
        nodes, held = await self.holders()
        expected = assignment(PARTITIONS, set(NODES))
        astray = sorted(p for p in expected if held.get(p) != expected[p])
        lines = [
            f"live nodes {sorted(nodes)}",
            f"partitions held not as assigned {astray} (held {held}, assigned {expected})",
            f"active rows {await active_rows(store)}",
        ]
        async with httpx.AsyncClient(timeout=2) as client:
            for name, process in self.nodes.items():
                try:
                    stats = (await client.get(f"{process.url}/stats", headers=headers)).json()
                except (httpx.TransportError, ValueError) as error:
                    lines.append(f"{name}: /stats {error!r}")
                    continue
                lines.append(
                    f"{name}: state {stats.get('state')} active_triggers "
                    f"{stats.get('active_triggers')} cluster {stats.get('cluster')}"
                )
        return "\n".join(lines)

    def output(self) -> str:
        """Each node's last log lines but the access log's (the settling polls fill it)."""

        def tail(process: Any) -> str:
            lines = [
                line
                for line in process.output(1 << 22).splitlines()
                if '"logger": "uvicorn.access"' not in line
            ]
            return "\n".join(lines[-40:])

        return "\n".join(f"--- {n}:\n{tail(p)}" for n, p in self.nodes.items())

    def refused(self) -> Counter[str]:
        """Claims the nodes did not make for want of a valid lease, from their logs:
        `claim_not_held` (no valid token of their own) and `claim_fenced` (PostgreSQL
        refused the token: a newer holder had fenced the partition)."""
        return Counter(
            {
                name: sum(len(p.events(name)) for p in self.started)
                for name in ("claim_not_held", "claim_fenced")
            }
        )


async def active_rows(store: TriggerStore) -> int:
    async with store.db.engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "SELECT count(*) FROM hmt_gtt_orders WHERE status = 'active'"
        )
        return int(result.scalar_one())


@dataclass
class Outcome:
    schedule: ClusterSchedule
    verdict: Verdict = field(default_factory=Verdict)
    faults: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    triggers: int = 0
    fired: int = 0
    orders: int = 0
    seconds: float = 0.0
    stories: dict[str, list[str]] = field(default_factory=dict)


class Runner:
    """One cluster, one simulator, one database: schedules played one after another."""

    def __init__(
        self, sim: Simulator, store: TriggerStore, cluster: Cluster, headers: dict[str, str]
    ) -> None:
        self.sim, self.store, self.cluster, self.headers = sim, store, cluster, headers
        self.instruments = [i for i in sim.universe if i.kind == "EQ" and not i.is_index]

    async def run(self, schedule: ClusterSchedule) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome(schedule)
        chosen = [self.instruments[i % len(self.instruments)] for i in schedule.instruments]
        self.base = {i.token: i.close for i in chosen}
        self.by_token = {i.token: i for i in chosen}
        for instrument in chosen:  # each schedule starts at the instruments' closes
            self.sim.push_price(instrument.token, rupees(instrument, instrument.close))
        known: list[Trigger] = []
        logged = len(self.sim.faults.log)
        for step in schedule.steps:
            if step.kind in FAULT_KINDS:
                await self.inject(step, outcome)
            else:
                await self.act(step, known, outcome)
            await asyncio.sleep(step.wait)
        self.sim.faults.clear()
        self.sim.ticker.resume()
        for node in NODES:
            moved = await self.cluster.restore(node)
            if moved is not None:
                outcome.hits[moved] += 1
        await self.cluster.heal(self.store, self.headers)
        ids = [t.id for t in known]
        for up in (True, False):
            await self.push_through(up, ids)
        for endpoint, kind in self.sim.faults.log[logged:]:
            outcome.hits[f"rest:{kind.value}@{endpoint}"] += 1
        await self.judge(ids, outcome)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def price(self, token: int, offset: int) -> int:
        """The base moved by `offset` hundredths of a percent, on the instrument's grid."""
        tick = self.by_token[token].tick
        return self.base[token] + round(self.base[token] * offset / 10_000 / tick) * tick

    def push(self, token: int, units: int) -> None:
        self.sim.push_price(token, rupees(self.by_token[token], units))

    def extreme(self, token: int, up: bool) -> int:
        return self.price(token, 500 if up else -500)

    async def inject(self, step: Step, outcome: Outcome) -> None:
        label = step.kind
        if step.kind in NODE_FAULTS:
            node = self.cluster.free(step.args["node"])
            if node is None:
                outcome.faults["node fault skipped (every node faulted)"] += 1
                return
            match step.kind:
                case "node_kill":
                    await self.cluster.kill(node)
                case "nats_cut":
                    label = f"nats_cut:{step.args['mode']}"
                    await self.cluster.cut(node, step.args["mode"], step.args["seconds"])
                case _:
                    outcome.hits["db connections cut"] += await self.cluster.db_kill(node)
        elif step.kind == "rest_fault":
            status = "/429" if step.args.get("status") == 429 else ""
            label = f"rest:{step.args['kind']}{status}@{step.args['endpoint']}"
            self.sim.faults.add(**step.args)
        elif step.kind == "rate_fault":
            rule = step.args["rule"]
            label = f"rate:{rule['kind']}@{rule['endpoint']}"
            self.sim.faults.add(**rule)
            token = self.token_of(step.args["instrument"])
            self.push(token, self.extreme(token, step.args["up"]))
        elif step.kind == "ticker_drop":
            self.sim.ticker.drop_all()
        elif step.kind == "ticker_stall":
            self.sim.ticker.stall(step.args["seconds"])
        outcome.faults[label] += 1

    def token_of(self, index: int) -> int:
        return self.instruments[index % len(self.instruments)].token

    async def act(self, step: Step, known: list[Trigger], outcome: Outcome) -> None:
        match step.kind:
            case "restore":
                moved = await self.cluster.restore(step.args["node"])
                if moved is not None:
                    outcome.hits[moved] += 1
            case "create":
                known.append(await self.create(step.args))
            case "tick":
                token = self.token_of(step.args["instrument"])
                self.push(token, self.price(token, step.args["at"]))
            case "tick_at" if known:
                # Exactly on one of a trigger's thresholds.
                trigger = known[step.args["target"] % len(known)]
                leg = trigger.legs[step.args["target"] % len(trigger.legs)]
                self.push(trigger.watched, trigger.threshold(leg))
            case "sweep":
                token = self.token_of(step.args["instrument"])
                self.push(token, self.extreme(token, step.args["up"]))

    async def create(self, args: dict[str, Any]) -> Trigger:
        token = self.token_of(args["instrument"])
        instrument = self.by_token[token]
        common = {
            "user_id": USER,
            "instrument_token": InstrumentToken(token),
            "exchange": Exchange.NSE,
            "tradingsymbol": instrument.tradingsymbol,
            "price_divisor": instrument.divisor,
            "quantity": 1,
        }
        side = Side(args["side"])
        if args["oco"]:
            trigger = make_oco(
                side, self.price(token, args["stop"]), self.price(token, args["target"]), **common
            )
        else:
            trigger = make_trigger(
                side=side, trigger_price_1=self.price(token, args["at"]), **common
            )
        return (await self.store.create(trigger)).trigger

    async def push_through(self, up: bool, ids: list[str]) -> None:
        """Push every instrument beyond its legs until none holding there is armed and
        nothing is in flight (pushed again every half second: a tick sent while a feed
        reconnects or a partition moves is not replayed)."""
        prices = {token: self.extreme(token, up) for token in self.base}

        def send() -> None:
            for token, units in prices.items():
                self.push(token, units)

        send()
        started = pushed = time.monotonic()
        while time.monotonic() - started < SETTLE_WITHIN:
            records = await self.loaded(ids)
            armed = [
                r
                for r in records
                if r.status is Status.ACTIVE and legs_holding(r.trigger, prices[r.trigger.watched])
            ]
            if not armed and not any(r.status is Status.TRIGGERED for r in records):
                return
            if time.monotonic() - pushed > 0.5:
                send()
                pushed = time.monotonic()
            await asyncio.sleep(0.05)

    async def loaded(self, ids: list[str]) -> list[TriggerRecord]:
        return [r for r in [await self.store.load(i) for i in ids] if r is not None]

    async def judge(self, ids: list[str], outcome: Outcome) -> None:
        records = await self.loaded(ids)
        histories = [await self.store.history(USER, TriggerId(r.id)) for r in records]
        orders = self.sim.orders()
        outcome.verdict = judge_all(zip(records, histories, strict=True), orders)
        async with self.store.db.engine.connect() as conn:
            every = [
                str(row[0]) for row in await conn.exec_driver_sql("SELECT id FROM hmt_gtt_orders")
            ]
        known_tags = {t for r in await self.loaded(every) for t in tags_of(r)}
        outcome.verdict.orphans = orphans(orders, known_tags)
        mine = {t for r in records for t in tags_of(r)}
        outcome.orders = sum(1 for o in orders if o.get("tag") in mine)
        outcome.triggers = len(records)
        outcome.fired = sum(1 for r in records if r.triggered_leg is not None)
        failing = {j.trigger_id for j in outcome.verdict.failures()}
        for record, history in zip(records, histories, strict=True):
            if record.id in failing:
                outcome.stories[record.id] = [
                    *(f"{e.kind.value} {e.payload}" for e in history),
                    f"row status={record.status.value} claimed_by={record.claimed_by}",
                ]


def describe(outcome: Outcome) -> str:
    classes = " ".join(f"{c}={n}" for c, n in sorted(outcome.verdict.counts.items()))
    return (
        f"  seed={outcome.schedule.seed} steps={len(outcome.schedule.steps)} "
        f"faults={dict(outcome.faults)} met={dict(outcome.hits)} triggers={outcome.triggers} "
        f"fired={outcome.fired} orders={outcome.orders} {classes} "
        f"orphans={len(outcome.verdict.orphans)} {outcome.seconds:.1f}s"
    )


def failure(outcome: Outcome, cluster: Cluster) -> str:
    schedule = outcome.schedule
    return "\n".join(
        [
            f"cluster chaos schedule seed={schedule.seed} is not valid.",
            f"replay: HMT_CHAOS_SEED={schedule.seed} HMT_CLUSTER_SCHEDULES=1 "
            ".venv/bin/pytest -s tests/cluster/test_cluster_chaos.py",
            "steps:",
            *[f"    {step.describe()} (then {step.wait}s)" for step in schedule.steps],
            "failures:",
            *[f"    {j.trigger_id} {j.classes} {j.why}" for j in outcome.verdict.failures()],
            *[
                f"    story of {trigger_id}:\n" + "\n".join(f"        {line}" for line in story)
                for trigger_id, story in outcome.stories.items()
            ],
            f"orphan orders: {outcome.verdict.orphans}",
            "nodes' logs (tails):",
            cluster.output(),
        ]
    )


def report(outcomes: list[Outcome], refused: Counter[str]) -> str:
    total = Verdict()
    faults: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for outcome in outcomes:
        total.merge(outcome.verdict)
        faults.update(outcome.faults)
        hits.update(outcome.hits)
    seconds = [o.seconds for o in outcomes]
    return "\n".join(
        [
            f"RELIABILITY 21 cluster chaos: seed={SEED} schedules run={len(outcomes)} "
            f"(seeds {SEED}..{SEED + len(outcomes) - 1}); 3 nodes, {PARTITIONS} partitions, "
            f"lease TTL {TTL_S} s",
            f"faults injected={sum(faults.values())} by kind={dict(sorted(faults.items()))}",
            f"faults met={dict(sorted(hits.items()))}",
            f"triggers={sum(o.triggers for o in outcomes)} fired={sum(o.fired for o in outcomes)} "
            f"orders at the sim={sum(o.orders for o in outcomes)} "
            f"statuses={dict(sorted(total.statuses.items()))}",
            "classes: " + " ".join(f"{c}={total.counts[c]}" for c in CLASSES),
            f"duplicated={total.counts['duplicated']} (must be 0) lost={total.counts['lost']} "
            f"(must be 0) oco-double={total.counts['oco-double']} (must be 0) "
            f"unexpected={total.counts['unexpected'] + len(total.orphans)} (must be 0)",
            f"claims refused to a node without a valid lease (its logs): {dict(refused)}",
            f"schedule seconds p50/max={statistics.median(seconds) if seconds else 0:.1f}/"
            f"{max(seconds, default=0):.1f}",
        ]
    )


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_chaos") as url:
        yield url


@contextlib.asynccontextmanager
async def proxies_to(port: int) -> AsyncIterator[dict[str, FaultProxy]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {node: await stack.enter_async_context(FaultProxy(port)) for node in NODES}


async def test_cluster_chaos_schedules_place_every_trigger_exactly_once(
    pg_url: str, nats_port: int, nats_url: str, tmp_path: Path
) -> None:
    """Every schedule valid: 0 duplicated, 0 lost, 0 oco-double, 0 unexpected."""
    seeds = [SEED + i for i in range(SCHEDULES)]
    print(f"\ncluster chaos: seed={SEED} schedules={seeds}")
    outcomes: list[Outcome] = []
    async with (
        Simulator(seed=SEED, heartbeat_interval=0.2) as sim,
        open_store(pg_url) as opened,
        proxies_to(nats_port) as proxies,
    ):
        # The nodes' partition count: the stored partition of each row created here.
        store = TriggerStore(opened.db, partitions=PARTITIONS)
        ops = (await TokenStore(store.db).issue("ops", operator=True)).token
        headers = {"Authorization": f"Bearer {ops}"}
        cluster = Cluster(sim, pg_url, nats_url, proxies, tmp_path)
        try:
            for node in NODES:
                await cluster.start(node)
            await cluster.heal(store, headers)
            runner = Runner(sim, store, cluster, headers)
            for seed in seeds:
                outcome = await runner.run(generate(seed, len(runner.instruments)))
                outcomes.append(outcome)
                print(describe(outcome))
                assert outcome.verdict.valid, failure(outcome, cluster)
        finally:
            await cluster.aclose()
            print(report(outcomes, cluster.refused()))
    # The faults were real: every schedule cut NATS and killed nodes, and the database
    # connections the campaign killed were there to kill.
    assert sum(o.hits["db connections cut"] for o in outcomes) > 0, describe(outcomes[-1])
    assert all(o.faults["node_kill"] for o in outcomes), describe(outcomes[-1])
    assert all(o.faults["nats_cut:refuse"] + o.faults["nats_cut:stall"] for o in outcomes)
