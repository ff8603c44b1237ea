"""Seeded, deterministic fault injection for the REST endpoints and the ticker.

A plan is an ordered list of rules. Each rule draws from its own generator,
seeded from (plan seed, rule number), once for every request it matches, so
the same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from hmt.sim.errors import ERROR_STATUS


class FaultKind(StrEnum):
    """What a rule does to the request or frame it hits."""

    LATENCY = "latency"  # wait `delay` seconds, then serve normally
    ERROR = "error"  # answer with a Kite error; the request is not processed
    CLOSE = "close"  # close the socket without processing or answering
    ACCEPT_THEN_ERROR = "accept_then_error"  # process (the order exists), answer with an error
    ACCEPT_THEN_CLOSE = "accept_then_close"  # process, then close without answering
    ACCEPT_THEN_DELAY = "accept_then_delay"  # process, answer after `delay` seconds
    NEVER_ANSWER = "never_answer"  # process, then hold the connection without answering
    WS_REJECT = "ws_reject"  # fail the WebSocket upgrade with `status`
    WS_DROP = "ws_drop"  # cut the TCP connection instead of sending a frame
    WS_STALL = "ws_stall"  # send nothing, heartbeats included, for `delay` seconds
    WS_MALFORMED = "ws_malformed"  # send a malformed frame instead of a data frame


REST_KINDS = frozenset(
    {
        FaultKind.LATENCY,
        FaultKind.ERROR,
        FaultKind.CLOSE,
        FaultKind.ACCEPT_THEN_ERROR,
        FaultKind.ACCEPT_THEN_CLOSE,
        FaultKind.ACCEPT_THEN_DELAY,
        FaultKind.NEVER_ANSWER,
    }
)
# The ticker's pseudo-endpoints: the upgrade, and each outgoing data frame.
WS_CONNECT = "ws_connect"
WS_FRAME = "ws_frame"
WS_KINDS = {
    FaultKind.WS_REJECT: WS_CONNECT,
    FaultKind.WS_DROP: WS_FRAME,
    FaultKind.WS_STALL: WS_FRAME,
    FaultKind.WS_MALFORMED: WS_FRAME,
}
MALFORMED_KINDS = ("bad_length", "truncated", "short", "bad_json")


class FaultError(ValueError):
    """A fault rule that cannot be used; the message names the field."""


@dataclass(slots=True)
class Fault:
    """One rule: which endpoint, what happens, how often, how many times."""

    kind: FaultKind
    endpoint: str = "*"  # an endpoint name (e.g. "place_order"), "*" for every REST one
    rate: float = 1.0  # chance that a matching request is hit
    times: int | None = None  # stop after this many hits
    delay: float = 0.0  # seconds, for latency, accept_then_delay and ws_stall
    error_type: str = "NetworkException"
    status: int | None = None  # HTTP status; default: Kite's for error_type (or 503 for ws_reject)
    message: str | None = None
    malformed: str = "bad_length"  # which malformed frame ws_malformed sends
    hits: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        try:
            self.kind = FaultKind(self.kind)
        except ValueError:
            raise FaultError(
                f"kind: {self.kind!r} is not one of {', '.join(k.value for k in FaultKind)}"
            ) from None
        if not 0.0 <= self.rate <= 1.0:
            raise FaultError(f"rate: {self.rate} is not between 0 and 1")
        if self.times is not None and self.times < 0:
            raise FaultError(f"times: {self.times} is negative")
        if self.delay < 0:
            raise FaultError(f"delay: {self.delay} is negative")
        if self.error_type not in ERROR_STATUS:
            raise FaultError(f"error_type: {self.error_type!r} is not a Kite error type")
        if self.status is not None and not 400 <= self.status <= 599:
            raise FaultError(f"status: {self.status} is not an HTTP error status")
        if self.malformed not in MALFORMED_KINDS:
            raise FaultError(
                f"malformed: {self.malformed!r} is not one of {', '.join(MALFORMED_KINDS)}"
            )
        if self.kind in WS_KINDS:
            self.endpoint = WS_KINDS[self.kind]

    @property
    def http_status(self) -> int:
        if self.status is not None:
            return self.status
        return 503 if self.kind is FaultKind.WS_REJECT else ERROR_STATUS[self.error_type]

    @property
    def text(self) -> str:
        return self.message or f"Simulated {self.error_type} ({self.kind.value})"

    def matches(self, endpoint: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.endpoint == "*":
            return not endpoint.startswith("ws_")
        return self.endpoint == endpoint

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """A rule from the control API's JSON, refusing unknown fields by name."""
        if not isinstance(data, Mapping):
            raise FaultError("a fault rule must be a JSON object")
        known = {f.name for f in fields(cls)} - {"hits"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultError(f"{unknown[0]}: not a fault rule field ({', '.join(sorted(known))})")
        if "kind" not in data:
            raise FaultError("kind: required")
        types = {
            "rate": (int, float),
            "delay": (int, float),
            "times": (int, type(None)),
            "status": (int, type(None)),
            "endpoint": (str,),
            "error_type": (str,),
            "message": (str, type(None)),
            "malformed": (str,),
            "kind": (str,),
        }
        for name, value in data.items():
            if not isinstance(value, types[name]) or isinstance(value, bool):
                raise FaultError(f"{name}: {value!r} has the wrong type")
        return cls(**data)


class FaultPlan:
    """The active rules, their generators, and a log of what fired."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rules: list[Fault] = []
        self._rngs: list[random.Random] = []
        self.fired: Counter[str] = Counter()
        self.log: list[tuple[str, FaultKind]] = []

    def add(self, fault: Fault | None = None, /, **spec: Any) -> Fault:
        """Append a rule (a Fault, or its fields as keywords) and return it."""
        rule = fault if fault is not None else Fault(**spec)
        self._rngs.append(random.Random(f"{self.seed}:{len(self.rules)}"))
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule; the log is kept."""
        self.rules.clear()
        self._rngs.clear()

    def pick(self, endpoint: str) -> Fault | None:
        """The rule that hits this request, if any (the first one that draws a hit)."""
        hit: Fault | None = None
        for rule, rng in zip(self.rules, self._rngs, strict=True):
            if not rule.matches(endpoint):
                continue
            # Every matching rule draws, hit or not: a rule's sequence then depends
            # only on the requests it matched, not on the rules before it.
            drawn = rng.random() < rule.rate
            if drawn and hit is None:
                hit = rule
        if hit is not None:
            hit.hits += 1
            self.fired[hit.kind.value] += 1
            self.log.append((endpoint, hit.kind))
        return hit
