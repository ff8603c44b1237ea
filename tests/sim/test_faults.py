"""Fault plans: seeded and reproducible, bounded, and strict about their rules."""

from __future__ import annotations

from typing import Any

import pytest

from hmt.sim.faults import WS_CONNECT, WS_FRAME, Fault, FaultError, FaultKind, FaultPlan


def hits(seed: int, rate: float = 0.3, requests: int = 200) -> list[int]:
    plan = FaultPlan(seed)
    plan.add(kind="error", endpoint="place_order", rate=rate)
    return [n for n in range(requests) if plan.pick("place_order") is not None]


def test_the_same_seed_hits_the_same_requests() -> None:
    """With rate 0.3, seed 7 hits the same request numbers every time; seed 8 others."""
    print("seeds 7 and 8")
    first = hits(7)
    assert first == hits(7)
    assert first != hits(8)
    assert 30 < len(first) < 90


def test_rules_match_their_endpoint_only_and_stop_after_times() -> None:
    """A rule hits only its endpoint, `*` every REST one, and `times` caps its hits."""
    plan = FaultPlan(1)
    capped = plan.add(kind="latency", endpoint="orders", times=2, delay=0.1)
    assert plan.pick("quote") is None
    assert plan.pick("orders") is capped
    assert plan.pick("orders") is capped
    assert plan.pick("orders") is None
    anywhere = plan.add(kind="error")
    assert plan.pick("profile") is anywhere
    assert plan.pick(WS_FRAME) is None
    assert plan.fired == {"latency": 2, "error": 1}
    assert plan.log[-1] == ("profile", FaultKind.ERROR)
    plan.clear()
    assert plan.pick("profile") is None


def test_ticker_kinds_bind_to_the_ticker_endpoints() -> None:
    """ws_reject applies to the upgrade and the others to outgoing frames."""
    assert Fault(FaultKind.WS_REJECT, endpoint="orders").endpoint == WS_CONNECT
    assert Fault(FaultKind.WS_DROP).endpoint == WS_FRAME
    assert Fault(FaultKind.WS_REJECT).http_status == 503


def test_status_defaults_to_kites_code_for_the_error_type() -> None:
    """Each error type gets Kite's HTTP status unless the rule sets one."""
    assert Fault(FaultKind.ERROR, error_type="TokenException").http_status == 403
    assert Fault(FaultKind.ERROR, error_type="InputException").http_status == 400
    assert Fault(FaultKind.ERROR, error_type="NetworkException").http_status == 503
    assert Fault(FaultKind.ERROR, status=429).http_status == 429


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "meltdown"}, "kind"),
        ({"endpoint": "orders"}, "kind"),
        ({"kind": "error", "rate": 2}, "rate"),
        ({"kind": "error", "rate": "often"}, "rate"),
        ({"kind": "error", "times": -1}, "times"),
        ({"kind": "latency", "delay": -1}, "delay"),
        ({"kind": "error", "error_type": "OopsException"}, "error_type"),
        ({"kind": "error", "status": 200}, "status"),
        ({"kind": "ws_malformed", "malformed": "weird"}, "malformed"),
        ({"kind": "error", "colour": "red"}, "colour"),
        ({"kind": "error", "times": True}, "times"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(spec: Any, field: str) -> None:
    """A rule from JSON with a bad or unknown field is refused, and the message names it."""
    with pytest.raises(FaultError, match=f"^{field}:"):
        Fault.from_json(spec)


def test_a_rule_round_trips_through_json() -> None:
    """to_json gives what from_json accepts (less the hit counter)."""
    rule = Fault.from_json(
        {"kind": "accept_then_delay", "endpoint": "place_order", "delay": 0.5, "rate": 0.5}
    )
    data = rule.to_json()
    data.pop("hits")
    assert Fault.from_json(data) == rule
