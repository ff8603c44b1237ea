"""The health verdict for each situation an operator can meet."""

from __future__ import annotations

import dataclasses

import pytest

from hmt.engine.health import Observations, Verdict, judge

HEALTHY = Observations(
    enabled=True,
    running=True,
    ticker_connected=True,
    last_tick_age=1.0,
    database_reachable=True,
    broker_session_valid=True,
    active_triggers=3,
)


@pytest.mark.parametrize(
    ("change", "verdict", "reason"),
    [
        ({}, Verdict.OK, None),
        ({"enabled": False}, Verdict.DISABLED, "HMT_ENGINE_ENABLED"),
        ({"running": False}, Verdict.DISABLED, "stopped"),
        ({"database_reachable": False}, Verdict.DOWN, "database unreachable"),
        ({"broker_session_valid": False}, Verdict.DOWN, "login required"),
        ({"ticker_connected": False}, Verdict.DOWN, "ticker disconnected"),
        ({"last_tick_age": 600.0}, Verdict.DEGRADED, "last tick 600 s ago"),
        ({"last_tick_age": None}, Verdict.DEGRADED, "no tick yet"),
        ({"last_tick_age": None, "active_triggers": 0}, Verdict.OK, None),
        ({"accounts_login_required": ("family-2",)}, Verdict.DEGRADED, "account family-2"),
        # Beside a live linked account, the default's login and feed pause a part only.
        (
            {"broker_session_valid": False, "others_firing": True},
            Verdict.DEGRADED,
            "default account's triggers are paused",
        ),
        (
            {"ticker_connected": False, "others_firing": True},
            Verdict.DEGRADED,
            "on the default account's feed",
        ),
        ({"database_reachable": False, "others_firing": True}, Verdict.DOWN, "database"),
        (
            {"reconciling": True, "others_firing": True},
            Verdict.DOWN,
            "reconciling with the broker's order book",
        ),
    ],
)
def test_verdicts(change: dict[str, object], verdict: Verdict, reason: str | None) -> None:
    """Each situation gives its verdict and a reason naming the cause."""
    health = judge(dataclasses.replace(HEALTHY, **change))
    assert health.verdict is verdict
    if reason is None:
        assert health.reasons == ()
    else:
        assert any(reason in r for r in health.reasons)


def test_every_outage_is_listed() -> None:
    """With several things down at once, every one is named."""
    health = judge(dataclasses.replace(HEALTHY, database_reachable=False, ticker_connected=False))
    assert health.verdict is Verdict.DOWN
    assert len(health.reasons) == 2


def test_a_linked_accounts_lapse_is_named_beside_stale_ticks_and_not_over_an_outage() -> None:
    """A linked account's login is a warning (only its triggers pause), listed with the
    other warnings; an outage still wins."""
    lapsed = dataclasses.replace(HEALTHY, accounts_login_required=("a", "b"), last_tick_age=600.0)
    health = judge(lapsed)
    assert health.verdict is Verdict.DEGRADED
    assert len(health.reasons) == 2
    assert "account a, b" in health.reasons[0]
    down = judge(dataclasses.replace(lapsed, broker_session_valid=False))
    assert down.verdict is Verdict.DOWN
