"""Plays chaos schedules against the real pieces and judges each one.

The simulator lives in this process (it plays the broker, which survives the
engine's death): Kite's or Upstox's, driven through `chaos_market` (whose
instruments stand for INFY, NIFTY 50 and the NIFTY options below); the engine
is `hmt run` in a child process, killed and restarted through `EngineSlot`;
edits go through its HTTP API with a user token. After the steps the runner
heals (clears faults, resumes the feed, restarts a dead engine), then pushes
1575.00 and 1425.00 (and NIFTY 50 with them, 5 % beyond its legs) until every
leg still armed has fired while the engine is healthy, waits for quiescence,
and hands the rows, their histories and the broker's book to `chaos_oracle`.

Baskets and watched triggers (`create_basket`, `create_watch`) are made with
the v2 body (`legs`), their orders' instruments looked up in the simulator's
universe as the instrument master lists them; a `patch` of one moves its legs'
conditions with a v2 edit.

The lost-commit fault (RELIABILITY 17): `snapshot` copies the database while
everything runs; `rollback` SIGKILLs the engine, restores that copy (the claims,
outcomes, creates and edits since are gone; the simulator keeps its orders) and
starts the engine again. The runner notes which orders the restored database no
longer accounts for (claims lost) so the oracle can tell a row legitimately
armed again from a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hmt.core.events import EventKind
from hmt.core.lifecycle import Status
from hmt.core.rules import legs_holding
from hmt.core.types import TriggerId
from hmt.sim.simulator import Simulator
from hmt.sim.upstox.server import UpstoxSim
from hmt.store.brackets import BracketStore
from hmt.store.records import TriggerRecord
from hmt.store.triggers import TriggerNotFound, TriggerStore
from tests.support.basket_history import has_basket, leg_tags
from tests.support.bracket_history import filled_at_broker, judge_bracket
from tests.support.chaos_market import ChaosMarket, Tradable, market_for
from tests.support.chaos_oracle import Judged, Verdict, judge_all, orphans, tags_of
from tests.support.chaos_schedule import (
    BASE,
    FAULT_KINDS,
    HIGH,
    KITE_TIMEOUT_MS,
    LOW,
    TICK,
    WATCH_HIGH,
    WATCH_LOW,
    WATCH_STEP,
    Schedule,
    Step,
)
from tests.support.chaos_trails import trail_body, trail_patch, trailing, trailing_armed
from tests.support.engine_process import EngineProcess, engine_process
from tests.support.eventually import eventually
from tests.support.snapshots import Snapshots

USER = "alice"
# The engine of a campaign: quick reconnects and retries, a short REST timeout (so
# `accept_then_delay` outlasts it), and enough retries that the schedules' finite
# faults can never exhaust them: any `failed` trigger is then a finding.
SETTINGS: dict[str, object] = {
    "kite_timeout_ms": KITE_TIMEOUT_MS,
    "upstox_timeout_ms": KITE_TIMEOUT_MS,  # the same on Upstox
    "fill_sweep_ms": 300,  # brackets: the order book read for fills the ticker missed
    "max_retries": 20,
    "rate_limit_writes_per_min": 0,
}
SETTLE_WITHIN = 20.0  # seconds for the final pushes to settle every trigger
STUCK_AFTER = 6.0  # a row still `triggered` this long after healing: restart (recovery)
KILL_SQL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name IN ('hmt-engine', 'hmt-listener') AND datname = current_database()"
)


def fault_label(step: Step) -> str:
    """`rest:<kind>[/429]@<endpoint>` for REST rules (`basket:rest:...` for a rule aimed
    at a basket's orders), the step's kind otherwise."""
    if step.kind not in ("rest_fault", "basket_fault"):
        return step.kind
    args = step.args.get("rule", step.args)
    status = "/429" if args.get("status") == 429 else ""
    label = f"rest:{args['kind']}{status}@{args['endpoint']}"
    return label if step.kind == "rest_fault" else f"basket:{label}"


def rupees(units: int) -> str:
    return f"{units // 100}.{units % 100:02d}"


# A `patch` step's shift is in INFY's ticks; a NIFTY 50 leg moves by this much per tick
# (2.50: about the same share of its price).
WATCH_PER_TICK = WATCH_STEP // 2


class EngineSlot:
    """The current `hmt run` child, if any: started, SIGKILLed and restarted on demand."""

    def __init__(self, sim: Simulator | UpstoxSim, database_url: str, log_dir: Path) -> None:
        self.sim, self.database_url, self.log_dir = sim, database_url, log_dir
        self.current: EngineProcess | None = None
        self._context: contextlib.AbstractAsyncContextManager[EngineProcess] | None = None
        self.starts = 0

    @property
    def up(self) -> bool:
        return self.current is not None and self.current.alive

    async def start(self) -> EngineProcess:
        await self.close()
        self.starts += 1
        self._context = engine_process(
            self.sim, self.database_url, self.log_dir, name=f"engine-{self.starts}", **SETTINGS
        )
        self.current = await self._context.__aenter__()
        await self.current.ready()
        return self.current

    async def close(self) -> None:
        """SIGKILL (nothing flushed) and reap the process."""
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
        self._context, self.current = None, None

    def output(self) -> str:
        return self.current.output() if self.current is not None else "(no engine running)"


@dataclass
class Known:
    """A trigger this schedule created and was told about (201).

    `watch`: the instrument whose price fires it (`tick_at` pushes that one);
    `directions`: a v2 trigger's stated directions, one per leg (None: v1).
    """

    id: str
    oco: bool
    prices: list[int]
    watch: int  # the traded instrument (INFY on Kite) or the watched index
    directions: list[str] | None = None
    basket: bool = False  # a leg of several orders
    trail: bool = False  # a trailing stop (issue 14): a patch changes its offset


@dataclass
class Outcome:
    """What one schedule did and the oracle's verdict on it."""

    schedule: Schedule
    verdict: Verdict
    faults: Counter[str] = field(default_factory=Counter)
    api: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)  # REST faults met, db backends cut
    triggers: int = 0
    fired: int = 0
    orders: int = 0
    created: Counter[str] = field(default_factory=Counter)  # 201s by step kind
    baskets: int = 0  # triggers with a leg of several orders
    basket_orders: int = 0  # their orders at the simulator
    # Basket orders that met a fault: a retry, or an outcome found by looking the tag up.
    basket_orders_faulted: int = 0
    watching: int = 0  # triggers watching another instrument than they trade
    trailing: int = 0  # triggers with a trailing stop (issue 14)
    stuck_restarts: int = 0
    brackets: list[str] = field(default_factory=list)  # ids of the brackets created
    bracket_exits: int = 0  # exit triggers their fills armed
    seconds: float = 0.0
    # RELIABILITY 17: what the rollback took away.
    rollbacks: int = 0
    lost_claims: set[str] = field(default_factory=set)  # tags ordered, unclaimed once restored
    lost_outcomes: int = 0  # rows placed before the rollback, `triggered` after it
    erased: dict[str, TriggerRecord] = field(default_factory=dict)  # rows it removed
    erased_orders: int = 0  # orders at the broker for those rows
    orphan_orders: list[dict[str, Any]] = field(default_factory=list)  # as the broker shows them
    # The failing triggers' stories, for the failure message: events and order rows.
    stories: dict[str, list[str]] = field(default_factory=dict)


class ChaosRunner:
    """One database, one simulator, one engine slot: schedules played one after another."""

    def __init__(
        self,
        sim: Simulator | UpstoxSim,
        store: TriggerStore,
        slot: EngineSlot,
        token: str,
        pg_dsn: str | None,
        snapshots: Snapshots | None,
    ) -> None:
        self.sim, self.store, self.slot = sim, store, slot
        self.headers = {"Authorization": f"Bearer {token}"}
        self.pg_dsn = pg_dsn
        self.snapshots = snapshots
        # Every schedule's rollback-erased rows: their orders stay in the simulator's
        # book (one per chunk) and are no later schedule's orphans.
        self.erased: dict[str, TriggerRecord] = {}
        self.client = httpx.AsyncClient(timeout=3.0)
        self.market: ChaosMarket = market_for(sim)
        self.traded, self.nifty = self.market.traded, self.market.watched
        self.options = self.market.options
        # The final push: each watched instrument's price beyond all its legs.
        self.pushes = (
            {self.traded.token: HIGH, self.nifty.token: WATCH_HIGH},
            {self.traded.token: LOW, self.nifty.token: WATCH_LOW},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # ---- one schedule ----------------------------------------------------

    async def run(self, schedule: Schedule) -> Outcome:
        started = time.perf_counter()
        before = set(await self.all_ids())
        outcome = Outcome(schedule, Verdict())
        known: list[Known] = []
        logged = len(self.market.faults.log)
        if not self.slot.up:
            await self.slot.start()
        for step in schedule.steps:
            await self.play(step, known, outcome)
            await asyncio.sleep(step.wait)
        new = [i for i in await self.all_ids() if i not in before]
        await self.heal(new, outcome)
        # Brackets' exits are made by fills during the heal: they are pushed through too.
        await self.settle_brackets(outcome)
        grown = [i for i in await self.all_ids() if i not in before]
        if len(grown) > len(new):
            new = grown
            for prices in self.pushes:
                await self.push_through(prices, new, outcome)
            await self.healthy()
        for endpoint, kind in self.market.faults.log[logged:]:
            outcome.hits[f"rest:{kind.value}@{endpoint}"] += 1
        records = [r for r in [await self.store.load(i) for i in new] if r is not None]
        histories = [await self.store.history(USER, TriggerId(r.id)) for r in records]
        orders = self.market.orders()
        outcome.verdict = judge_all(
            zip(records, histories, strict=True),
            orders,
            lost_claims=frozenset(outcome.lost_claims),
            erased=outcome.erased.values(),
        )
        everyone = [r for r in [await self.store.load(i) for i in await self.all_ids()] if r]
        everyone += self.erased.values()
        outcome.verdict.orphans = orphans(orders, {t for r in everyone for t in tags_of(r)})
        outcome.orphan_orders = [o for o in orders if str(o["order_id"]) in outcome.verdict.orphans]
        mine = {t for r in [*records, *outcome.erased.values()] for t in tags_of(r)}
        outcome.orders = sum(1 for o in orders if o.get("tag") in mine)
        outcome.triggers = len(records)
        outcome.fired = sum(1 for r in records if r.triggered_leg is not None)
        baskets = [r for r in records if has_basket(r.trigger)]
        outcome.baskets = len(baskets)
        in_baskets = {t for r in baskets for t in tags_of(r)}
        outcome.basket_orders = sum(1 for o in orders if o.get("tag") in in_baskets)
        outcome.watching = sum(1 for r in records if r.trigger.watch_token is not None)
        outcome.trailing = sum(1 for r in records if trailing(r))
        outcome.basket_orders_faulted = len(
            {
                (e.trigger_id, e.payload["position"])
                for history in histories
                for e in history
                if "position" in e.payload and e.kind in (EventKind.RETRY, EventKind.RECONCILED)
            }
        )
        await self.judge_brackets(orders, outcome)
        failing = {j.trigger_id for j in outcome.verdict.failures()}
        for record, history in zip(records, histories, strict=True):
            if record.id in failing:
                outcome.stories[record.id] = [
                    *(f"{e.kind.value} {e.payload}" for e in history),
                    *(f"row {state}" for state in record.orders),
                ]
        outcome.seconds = time.perf_counter() - started
        return outcome

    async def play(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        if step.kind in FAULT_KINDS:
            outcome.faults[fault_label(step)] += 1
            await self.inject(step, known, outcome)
        else:
            await self.act(step, known, outcome)

    async def inject(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        match step.kind:
            case "basket_fault":
                self.market.faults.add(**step.args["rule"])
                baskets = [k for k in known if k.basket]
                if baskets:  # its orders go out under the rule
                    target = baskets[step.args["target"] % len(baskets)]
                    await self.market.push(target.watch, rupees(target.prices[0]))
            case "ticker_drop":
                self.market.drop_feeds()
            case "ticker_stall":
                self.market.stall_feeds(step.args["seconds"])
            case "rest_fault":
                self.market.faults.add(**step.args)
            case "db_kill":
                outcome.hits["db connections cut"] += await self.kill_connections()
            case "engine_kill":
                await self.slot.close()
            case "rollback":
                await self.roll_back(outcome)

    async def act(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        """A price, an edit through the API, or the engine's restart."""
        target = (
            known[step.args["target"] % len(known)] if "target" in step.args and known else None
        )
        match step.kind:
            case "tick":
                await self.market.push(self.traded.token, rupees(step.args["price"]))
                if "watch" in step.args:  # a sweep: the watched instrument too
                    await self.market.push(self.nifty.token, rupees(step.args["watch"]))
            case "tick_watch":
                await self.market.push(self.nifty.token, rupees(step.args["price"]))
            case "tick_at" if target is not None:
                # Exactly on the threshold, of the instrument it watches.
                await self.market.push(target.watch, rupees(target.prices[0]))
            case "create" | "create_oco":
                await self.create(step, known, outcome)
            case "create_basket" | "create_watch" | "create_bracket" | "create_trail":
                await self.create_v2(step, known, outcome)
            case "patch" if target is not None:
                await self.patch(target, step.args["shift"], outcome)
            case "pause" | "resume" if target is not None:
                await self.api("POST", f"/triggers/{target.id}/{step.kind}", outcome)
            case "cancel" if target is not None:
                await self.api("DELETE", f"/triggers/{target.id}", outcome)
            case "engine_restart":
                await self.slot.start()
            case "snapshot":
                assert self.snapshots is not None, "a snapshot step without snapshots"
                await self.snapshots.take()

    async def create(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        args = step.args
        body: dict[str, Any] = {
            **self.instrument_body(self.traded),
            "transaction_type": args["side"],
            "quantity": 1,
            "product": "CNC",
        }
        if step.kind == "create_oco":
            prices = [args["stop"], args["target"]]
            body.update(
                trigger_type="oco",
                trigger_price_1=rupees(args["stop"]),
                trigger_price_2=rupees(args["target"]),
            )
        else:
            prices = [args["price"]]
            body.update(trigger_type="single", trigger_price_1=rupees(args["price"]))
            if args["limit"]:
                body.update(order_type="LIMIT", limit_price_1=rupees(args["price"]))
        response = await self.api("POST", "/triggers", outcome, json=body)
        if response is not None and response.status_code == 201:
            outcome.created[step.kind] += 1
            oco = step.kind == "create_oco"
            known.append(Known(response.json()["id"], oco, prices, self.traded.token))

    async def create_v2(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        """A basket on INFY's price, or orders on NIFTY 50's price: the v2 body; or a
        bracket (`create_bracket`), or a trailing stop (`create_trail`)."""
        if step.kind == "create_bracket":
            await self.create_bracket(step, outcome)
            return
        if step.kind == "create_trail":
            await self.create_trail(step, known, outcome)
            return
        args = step.args
        watched = self.nifty if step.kind == "create_watch" else None
        body: dict[str, Any] = {
            "trigger_type": "oco" if args["oco"] else "single",
            "legs": [
                {
                    "condition": {"price": rupees(leg["price"]), "direction": leg["direction"]},
                    # An INFY LIMIT order's price: its leg's (INFY's) or, on NIFTY 50, BASE.
                    "orders": [
                        self.order_body(o, BASE if watched else leg["price"]) for o in leg["orders"]
                    ],
                }
                for leg in args["legs"]
            ],
        }
        if watched is not None:
            body["watch"] = self.instrument_body(watched)
        response = await self.api("POST", "/triggers", outcome, json=body)
        if response is not None:
            assert response.status_code != 422, f"a v2 create refused: {response.text}"
        if response is not None and response.status_code == 201:
            outcome.created[step.kind] += 1
            known.append(
                Known(
                    response.json()["id"],
                    bool(args["oco"]),
                    [leg["price"] for leg in args["legs"]],
                    self.traded.token if watched is None else watched.token,
                    [leg["direction"] for leg in args["legs"]],
                    any(len(leg["orders"]) > 1 for leg in args["legs"]),
                )
            )

    async def create_bracket(self, step: Step, outcome: Outcome) -> None:
        """A bracket on INFY (issue 14): a v2 single entry of one order and its exits."""
        args = step.args
        direction = "at_or_above" if args["side"] == "BUY" else "at_or_below"
        order = {
            **self.instrument_body(self.traded),
            "transaction_type": args["side"],
            "quantity": 1,
            "product": "MIS",
        }
        body = {
            "entry": {
                "trigger_type": "single",
                "legs": [
                    {
                        "condition": {"price": rupees(args["price"]), "direction": direction},
                        "orders": [order],
                    }
                ],
            },
            "exits": {"target": rupees(args["target"]), "stop": rupees(args["stop"])},
        }
        response = await self.api("POST", "/brackets", outcome, json=body)
        if response is not None:
            assert response.status_code != 422, f"a bracket refused: {response.text}"
        if response is not None and response.status_code == 201:
            outcome.created[step.kind] += 1
            outcome.brackets.append(response.json()["id"])

    async def settle_brackets(self, outcome: Outcome) -> None:
        """Wait until each bracket has taken in every fill the broker shows (the ticker's
        update, or the sweep every HMT_FILL_SWEEP_MS)."""
        brackets = BracketStore(self.store)

        async def done() -> bool:
            orders = self.market.orders()
            for bracket_id in outcome.brackets:
                try:
                    record = await brackets.get(USER, bracket_id)
                except TriggerNotFound:
                    continue  # a rollback took it away
                if record.filled != filled_at_broker(record, orders):
                    return False
            return True

        with contextlib.suppress(AssertionError):  # judged as it is, then
            await eventually(done, within=SETTLE_WITHIN, interval=0.1)

    async def judge_brackets(self, orders: list[dict[str, Any]], outcome: Outcome) -> None:
        brackets = BracketStore(self.store)
        for bracket_id in outcome.brackets:
            try:
                record = await brackets.get(USER, bracket_id)
            except TriggerNotFound:
                continue
            outcome.bracket_exits += len(record.exit_records)
            classes = judge_bracket(record, orders)
            outcome.verdict.counts.update(classes)
            if classes:
                outcome.verdict.judged.append(
                    Judged(
                        bracket_id,
                        classes,
                        record.status.value,
                        len(record.exit_records),
                        f"bracket filled={record.filled} armed={record.armed} "
                        f"at broker={filled_at_broker(record, orders)} "
                        f"exits={[e.trigger.quantity for e in record.exit_records]}",
                    )
                )

    async def create_trail(self, step: Step, known: list[Known], outcome: Outcome) -> None:
        """A trailing SELL stop on INFY, alone or beside a fixed target (chaos_trails)."""
        order = self.order_body({"instrument": "INFY", "side": "SELL", "limit": False}, BASE)
        body = trail_body(step.args, order)
        response = await self.api("POST", "/triggers", outcome, json=body)
        if response is not None:
            assert response.status_code != 422, f"a trailing create refused: {response.text}"
        if response is not None and response.status_code == 201:
            outcome.created[step.kind] += 1
            target = step.args.get("target")
            prices = [BASE] if target is None else [BASE, target]
            token = self.traded.token
            trail = Known(response.json()["id"], target is not None, prices, token, trail=True)
            known.append(trail)

    @staticmethod
    def instrument_body(instrument: Tradable) -> dict[str, Any]:
        return {
            "instrument_token": instrument.token,
            "exchange": instrument.exchange,
            "tradingsymbol": instrument.tradingsymbol,
        }

    def order_body(self, args: dict[str, Any], threshold: int) -> dict[str, Any]:
        """One order of a v2 leg: INFY (1 share, CNC) or a NIFTY option (1 lot, NRML);
        a LIMIT one at the leg's price (INFY) or the option's previous close."""
        named = args["instrument"]
        if named == "INFY":
            instrument = self.traded
            quantity, product, price = 1, "CNC", threshold
        else:
            instrument = self.options[named["option"] % len(self.options)]
            quantity, product, price = instrument.lot_size, "NRML", instrument.close
        body = {
            **self.instrument_body(instrument),
            "transaction_type": args["side"],
            "quantity": quantity,
            "product": product,
            "order_type": "MARKET",
        }
        if args["limit"]:
            body.update(order_type="LIMIT", price=rupees(price))
        return body

    async def patch(self, target: Known, shift: int, outcome: Outcome) -> None:
        """Move a trigger's prices by `shift` (both legs of an oco, keeping their order);
        a v2 trigger's by a v2 edit of its legs' conditions, NIFTY 50's scaled to it."""
        if target.trail:
            await self.api(
                "PATCH", f"/triggers/{target.id}", outcome, json=trail_patch(shift, target.oco)
            )
            return
        if target.watch != self.traded.token:
            shift = shift // TICK * WATCH_PER_TICK
        prices = [p + shift for p in target.prices]
        body: dict[str, Any] = {
            f"trigger_price_{n}": rupees(p) for n, p in enumerate(prices, start=1)
        }
        if target.directions is not None:
            conditions = [
                {"price": rupees(p), "direction": d}
                for p, d in zip(prices, target.directions, strict=True)
            ]
            body = {"legs": [{"condition": c} for c in conditions]}
        response = await self.api("PATCH", f"/triggers/{target.id}", outcome, json=body)
        if response is not None and response.status_code == 200:
            target.prices = prices

    async def api(
        self, method: str, path: str, outcome: Outcome, json: Any = None
    ) -> httpx.Response | None:
        """One API call; None when the engine is down or died under it (outcome unknown)."""
        engine = self.slot.current
        if engine is None or not engine.alive:
            outcome.api[f"{method} unreachable"] += 1
            return None
        try:
            response = await self.client.request(
                method, engine.url + path, json=json, headers=self.headers
            )
        except httpx.TransportError:
            outcome.api[f"{method} no answer"] += 1
            return None
        outcome.api[f"{method} {response.status_code}"] += 1
        assert response.status_code < 500 or response.status_code == 503, (
            f"{method} {path} -> {response.status_code}: {response.text}"
        )
        return response

    async def kill_connections(self) -> int:
        """`pg_terminate_backend` on the engine's pool and listener; how many were cut."""
        assert self.pg_dsn is not None, "db_kill on a backend without server connections"
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            return int(await conn.fetchval(KILL_SQL))
        finally:
            await conn.close()

    async def roll_back(self, outcome: Outcome) -> None:
        """SIGKILL the engine, restore the snapshot, note what it lost, restart the engine."""
        assert self.snapshots is not None, "a rollback step without snapshots"
        await self.slot.close()
        before = {r.id: r for r in await self.loaded(await self.all_ids())}
        await self.store.db.engine.dispose()  # none of the test's connections spans it
        await self.snapshots.restore()
        await self.store.db.engine.dispose()
        after = {r.id: r for r in await self.loaded(await self.all_ids())}
        outcome.rollbacks += 1
        outcome.erased.update({i: r for i, r in before.items() if i not in after})
        self.erased.update(outcome.erased)
        # Each tag's trigger and leg: a basket's orders share their leg's claim, which
        # stores the tag of the leg's first order.
        owner = {
            tag: (i, leg)
            for i, r in before.items()
            for leg in r.trigger.legs
            for tag in leg_tags(r, leg)
        }
        outcomes_lost: set[str] = set()
        for order in self.market.orders():
            tag = str(order.get("tag"))
            if tag not in owner:
                continue
            trigger_id, leg = owner[tag]
            restored = after.get(trigger_id)
            if restored is None:
                outcome.erased_orders += 1
            elif restored.broker_tag != leg_tags(restored, leg)[0] or restored.status not in (
                Status.TRIGGERED,
                Status.PLACED,
            ):
                outcome.lost_claims.add(tag)
            elif restored.status is Status.TRIGGERED and before[trigger_id].status is Status.PLACED:
                outcomes_lost.add(trigger_id)
        outcome.lost_outcomes += len(outcomes_lost)
        await self.slot.start()

    # ---- heal, final push, quiescence -------------------------------------

    async def heal(self, ids: list[str], outcome: Outcome) -> None:
        """Faults off, engine up and healthy; then every armed leg is pushed through."""
        self.market.faults.clear()
        self.market.resume_feeds()
        if not self.slot.up:
            await self.slot.start()
        await self.healthy()
        for record in await self.loaded(ids):
            if record.status is Status.PAUSED:
                await self.resume(record.id, outcome)
        for prices in self.pushes:
            await self.push_through(prices, ids, outcome)
        await self.healthy()

    async def resume(self, trigger_id: str, outcome: Outcome) -> None:
        """Resume a paused trigger while healing; a 503 (`reconciling`: the engine has
        not read the order book yet) is asked again after its Retry-After."""
        for _ in range(20):
            response = await self.api("POST", f"/triggers/{trigger_id}/resume", outcome)
            if response is not None and response.status_code != 503:
                return
            await asyncio.sleep(float(response.headers.get("Retry-After", 1)) if response else 0.5)

    async def healthy(self) -> None:
        async def ok() -> bool:
            engine = self.slot.current
            assert engine is not None, "no engine"
            assert engine.alive, self.slot.output()
            try:
                response = await self.client.get(engine.url + "/health")
            except httpx.TransportError:
                return False
            return bool(response.json().get("status") == "ok")

        await eventually(ok, within=20, interval=0.05)

    async def push_through(self, prices: dict[int, int], ids: list[str], outcome: Outcome) -> None:
        """Push `prices` (per instrument) until no leg holding at its watched instrument's
        price is armed and nothing is in flight.

        Pushed again every half second: a tick sent while the feed reconnects is
        not replayed, and the condition must be seen while the engine is up.
        A row left `triggered` for STUCK_AFTER seconds (its order could not be
        resolved) is settled the documented way: a restart, whose recovery
        looks the tag up.
        """
        started = pushed = time.monotonic()
        restarted = False
        await self.push(prices)
        while time.monotonic() - started < SETTLE_WITHIN:
            records = await self.loaded(ids)
            armed = [
                r
                for r in records
                if r.status is Status.ACTIVE and legs_holding(r.trigger, prices[r.trigger.watched])
            ]
            armed += await trailing_armed(
                self.store.db, records, prices[self.traded.token], HIGH, LOW
            )
            flying = [r for r in records if r.status is Status.TRIGGERED]
            if not armed and not flying:
                return
            now = time.monotonic()
            if flying and not armed and not restarted and now - started > STUCK_AFTER:
                outcome.stuck_restarts += 1
                restarted = True
                await self.slot.start()
                await self.healthy()
            if now - pushed > 0.5:
                await self.push(prices)
                pushed = now
            await asyncio.sleep(0.05)

    async def push(self, prices: dict[int, int]) -> None:
        for token, price in prices.items():
            await self.market.push(token, rupees(price))

    async def loaded(self, ids: list[str]) -> list[TriggerRecord]:
        return [r for r in [await self.store.load(i) for i in ids] if r is not None]

    async def all_ids(self) -> list[str]:
        async with self.store.db.engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT id FROM hmt_gtt_orders ORDER BY created_at")
            return [str(row[0]) for row in result]


@contextlib.asynccontextmanager
async def chaos_runner(
    sim: Simulator | UpstoxSim,
    store: TriggerStore,
    database_url: str,
    log_dir: Path,
    token: str,
    snapshots: Snapshots | None = None,
) -> AsyncIterator[ChaosRunner]:
    pg = database_url if database_url.startswith("postgresql") else None
    slot = EngineSlot(sim, database_url, log_dir)
    runner = ChaosRunner(sim, store, slot, token, pg, snapshots)
    try:
        yield runner
    finally:
        await runner.aclose()
        await slot.close()
