"""The engine's health verdict: ok, degraded or down, always with the reasons."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # still firing, but something needs attention
    DOWN = "down"  # nothing can fire until this is fixed
    DISABLED = "disabled"  # the kill switch is off, or the engine is stopped


@dataclass(frozen=True, slots=True)
class Observations:
    """What the health monitor sees at one moment."""

    enabled: bool
    running: bool
    ticker_connected: bool
    last_tick_age: float | None  # seconds; None before the first tick
    database_reachable: bool
    broker_session_valid: bool
    active_triggers: int
    stale_after: float = 60.0
    # Firing held until the broker's order book has been read (start-up, reconnection).
    reconciling: bool = False
    # Linked accounts whose session is not valid: only their triggers are paused.
    accounts_login_required: tuple[str, ...] = ()
    # Some linked account is live (its orders go): the default account's login or its
    # broker's feed failing then pauses only part of what is here (docs/accounts.md).
    others_firing: bool = False


@dataclass(frozen=True, slots=True)
class Health:
    verdict: Verdict
    reasons: tuple[str, ...]


def judge(seen: Observations) -> Health:
    """The verdict for `seen`; the reasons say what an operator should look at."""
    if not seen.enabled:
        return Health(Verdict.DISABLED, ("HMT_ENGINE_ENABLED is false",))
    if not seen.running:
        return Health(Verdict.DISABLED, ("the engine is stopped",))
    down: list[str] = []
    degraded: list[str] = []
    # Beside live linked accounts, the default account's login and feed are one part.
    partial = degraded if seen.others_firing else down
    if not seen.database_reachable:
        down.append("database unreachable: no trigger can be claimed")
    if not seen.broker_session_valid:
        partial.append(
            "broker login required: the access token is invalid or expired"
            + (" (the default account's triggers are paused)" if seen.others_firing else "")
        )
    if seen.reconciling and seen.broker_session_valid:
        down.append("reconciling with the broker's order book: firing is held until it is read")
    if not seen.ticker_connected:
        partial.append(
            "ticker disconnected: no prices are arriving"
            + (" on the default account's feed" if seen.others_firing else "")
        )
    if down:
        return Health(Verdict.DOWN, tuple(down))
    if seen.accounts_login_required:
        names = ", ".join(seen.accounts_login_required)
        degraded.append(f"login required for account {names}: its triggers are paused")
    if seen.active_triggers and (
        seen.last_tick_age is None or seen.last_tick_age > seen.stale_after
    ):
        age = (
            "no tick yet"
            if seen.last_tick_age is None
            else f"last tick {seen.last_tick_age:.0f} s ago"
        )
        # Outside market hours this is normal; it is a warning, not an outage.
        degraded.append(f"no recent ticks ({age})")
    if degraded:
        return Health(Verdict.DEGRADED, tuple(degraded))
    return Health(Verdict.OK, ())
