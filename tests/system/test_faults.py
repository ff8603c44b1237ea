"""RELIABILITY test 4 and final errors: the executor against every failure the broker can show.

Each mode fires several triggers one by one, each meeting its own fault
(the simulator's seeded fault plan, or the fault proxy refusing connections),
on SQLite and PostgreSQL, against Kite's simulator and Upstox's (whose fault
plan answers each rule as the Upstox error meaning the same). The simulator's
order book is the judge: at most one order per tag, none lost, and the
database's order id is the broker's. The final errors are Kite's words.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.audit import audit, backend
from tests.support.eventually import eventually
from tests.support.system import BROKERS, System, running_system

INFY = 408065
FIRES = 5  # triggers per mode, each fired on its own tick
SEED = 11  # the simulator's (fault plans and order ids)
SLOW_REPLY_S = 0.6  # accept_then_delay answers after this...
REST_TIMEOUT_MS = 300  # ...and the engine stops waiting after this


@dataclass(frozen=True)
class Mode:
    """A way for the order call to fail once, and what the executor must do about it."""

    name: str
    faults: tuple[dict[str, Any], ...] = ()  # simulator rules, each hitting once per fire
    refuse: bool = False  # the first attempt meets a closed port
    settings: dict[str, Any] = field(default_factory=dict)
    # Ambiguous failures are looked up by tag before anything is sent again;
    # failures that left nothing at the broker are simply sent again.
    looked_up: bool = True
    sends: int | None = None  # order requests per trigger, when the mode fixes it


MODES = [
    Mode(
        "5xx_before_accept",
        ({"kind": "error", "endpoint": "place_order", "error_type": "NetworkException"},),
        sends=2,
    ),
    Mode("accept_then_5xx", ({"kind": "accept_then_error", "endpoint": "place_order"},), sends=1),
    Mode("accept_then_close", ({"kind": "accept_then_close", "endpoint": "place_order"},), sends=1),
    Mode(
        "accept_then_reply_after_timeout",
        ({"kind": "accept_then_delay", "endpoint": "place_order", "delay": SLOW_REPLY_S},),
        settings={"kite_timeout_ms": REST_TIMEOUT_MS, "upstox_timeout_ms": REST_TIMEOUT_MS},
        sends=1,
    ),
    Mode(
        "429",
        ({"kind": "error", "endpoint": "place_order", "status": 429},),
        looked_up=False,
        sends=2,
    ),
    # The backoff is long enough to reopen the port before the retry, and the
    # retries many enough that a second refusal would still end in one order.
    Mode(
        "connection_refused",
        refuse=True,
        settings={"retry_backoff_ms": 200, "max_retries": 4},
        looked_up=False,
    ),
    Mode(
        "lookup_fails_once",
        (
            {"kind": "accept_then_error", "endpoint": "place_order"},
            {"kind": "error", "endpoint": "orders", "error_type": "NetworkException"},
        ),
        sends=1,
    ),
]


async def _has_retry(system: System, trigger_id: str) -> bool:
    events = (await system.trigger(trigger_id))["events"] or []
    return any(e["kind"] == "retry" for e in events)


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
async def test_ambiguous_failures_place_exactly_once(
    database_url: str, mode: Mode, broker: str
) -> None:
    """RELIABILITY 4: whatever the order call does once, each fired trigger has one broker order."""
    async with running_system(
        database_url, broker=broker, seed=SEED, rest_proxy=mode.refuse, **mode.settings
    ) as system:
        sim, side, token = system.sim, system.side, system.token
        # The one read of the order book at start-up (reconciliation), before any order.
        assert side.book_reads() == 1
        system.push(token, "1600.00")
        triggers = [
            (await system.create(trigger_price_1=f"{1601 + i}.00"))["id"] for i in range(FIRES)
        ]
        for i, trigger_id in enumerate(triggers):
            for rule in mode.faults:
                sim.faults.add(**rule, times=1)
            if mode.refuse:
                assert system.proxy is not None
                await system.proxy.refuse()
            system.push(token, f"{1601 + i}.00")
            if mode.refuse:
                assert system.proxy is not None
                await eventually(lambda tid=trigger_id: _has_retry(system, tid), interval=0.01)
                await system.proxy.listen()
            await system.settled(trigger_id)

        result = await audit(system, triggers)
        lookups = side.book_reads() - 1  # after the start-up read
        faults_hit = Counter(f"{endpoint}:{kind.value}" for endpoint, kind in sim.faults.log)
        refusals = sum(
            "could not connect" in e["payload"].get("reason", "")
            for record in result.records
            for e in record["events"]
            if e["kind"] == "retry"
        )
        print(
            f"\nRELIABILITY-4 mode={mode.name} backend={backend(database_url)} broker={broker} "
            f"seed={SEED} {result.figures()} order_requests_at_sim={side.place_requests()} "
            f"lookups={lookups} faults_hit={dict(faults_hit)} refused_connects={refusals}"
        )
        assert result.exactly_once(), result.figures()
        assert result.statuses == Counter(placed=FIRES)
        assert len(side.orders()) == FIRES
        if mode.sends is not None:
            assert result.sends == Counter({mode.sends: FIRES})
        if mode.looked_up:
            assert lookups >= FIRES
        else:
            assert lookups == 0  # nothing reached the broker: no look-up is needed
        if mode.refuse:
            assert refusals >= FIRES
            assert min(result.sends) >= 2
        else:
            assert sum(faults_hit.values()) == FIRES * len(mode.faults)


FINAL_ERRORS = [
    # (tradingsymbol, injected fault or None, the broker's words)
    # A symbol the broker does not list: the API now refuses a symbol that is not the
    # token's before it is stored (tests/api/test_instrument_checks.py), so the broker's
    # refusal of one (an instrument delisted after the trigger was made) is injected.
    (
        "INFY",
        {
            "error_type": "InputException",
            "message": "Invalid `tradingsymbol`: NSE:NOTLISTED is not an instrument the "
            "simulator lists.",
        },
        "Invalid `tradingsymbol`: NSE:NOTLISTED is not an instrument the simulator lists.",
    ),
    (
        "INFY",
        {"error_type": "InputException", "message": "Quantity should be a multiple of lot size."},
        "Quantity should be a multiple of lot size.",
    ),
    (
        "INFY",
        {
            "error_type": "MarginException",
            "message": "Insufficient funds. Required margin is 1603.00 but available is 0.",
        },
        "Insufficient funds. Required margin is 1603.00 but available is 0.",
    ),
    (
        "INFY",
        {"error_type": "PermissionException", "message": "Insufficient permission for that call."},
        "Insufficient permission for that call.",
    ),
]


async def test_final_errors_fail_at_once_with_the_brokers_message(database_url: str) -> None:
    """A refusal no retry can change fails the trigger after one request, in the broker's words."""
    async with running_system(database_url, seed=SEED) as system:
        sim = system.sim
        assert sim.counters["rest_orders"] == 1  # the start-up read of the order book
        system.push(INFY, "1600.00")
        triggers = [
            (await system.create(tradingsymbol=symbol, trigger_price_1=f"{1601 + i}.00"))["id"]
            for i, (symbol, _, _) in enumerate(FINAL_ERRORS)
        ]
        for i, (trigger_id, (_, fault, _)) in enumerate(zip(triggers, FINAL_ERRORS, strict=True)):
            if fault is not None:
                sim.faults.add(kind="error", endpoint="place_order", times=1, **fault)
            system.push(INFY, f"{1601 + i}.00")
            await system.settled(trigger_id)

        result = await audit(system, triggers)
        messages = [record["error_message"] for record in result.records]
        print(
            f"\nFINAL-ERRORS backend={backend(database_url)} seed={SEED} {result.figures()} "
            f"order_requests_at_sim={sim.counters['rest_place_order']} "
            f"lookups={sim.counters['rest_orders'] - 1} "
            f"attempts={[r['attempts'] for r in result.records]} messages={messages}"
        )
        assert result.statuses == Counter(failed=len(FINAL_ERRORS))
        assert result.sends == Counter({1: len(FINAL_ERRORS)})
        assert [r["attempts"] for r in result.records] == [1] * len(FINAL_ERRORS)
        assert sim.counters["rest_place_order"] == len(FINAL_ERRORS)
        # A refusal is certain: nothing looked up after the start-up read.
        assert sim.counters["rest_orders"] == 1
        assert sim.orders() == []
        for message, (_, _, words) in zip(messages, FINAL_ERRORS, strict=True):
            assert message is not None
            assert words in message
        assert system.runtime.engine.stats.failed_orders == len(FINAL_ERRORS)
