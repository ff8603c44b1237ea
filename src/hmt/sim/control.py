"""The control API under /_sim/: JSON endpoints that drive the simulator.

Not part of Kite, never subject to faults, and unauthenticated: the simulator
listens on loopback and guards only paper money.

    GET    /_sim/state               urls, credentials, counters, fault rules
    POST   /_sim/price               {"token": 408065, "price": "1600.05"}
    GET    /_sim/orders              the order book with each order's history
    POST   /_sim/faults              a rule or a list of rules (see faults.Fault)
    DELETE /_sim/faults              remove every rule
    POST   /_sim/session/expire      every access token now gets 403 TokenException
    POST   /_sim/session/renew       a new valid access token
    POST   /_sim/session/request_token   a request token for POST /session/token
    POST   /_sim/ws/drop             cut every ticker connection
    POST   /_sim/ws/stall            {"seconds": 5} (or none: until resumed)
    POST   /_sim/ws/resume
    POST   /_sim/ws/malformed        {"kind": "bad_length"|"truncated"|"short"|"bad_json"}
    POST   /_sim/funds               {"available": "100000"} or {"available": null}
    POST   /_sim/fills               {"parts": 3, "market": "now"|"next_tick"}: how orders
                                      fill from now on (both optional; reset restores 1, now)
    GET    /_sim/fills
    POST   /_sim/reset
    POST   /_sim/gaps/jump           {"token": 256265, "price": "24000"}: one trade, far away
    POST   /_sim/gaps/outage         {"token", "level", "seconds", "back"?, "steps"?,
                                      "socket"?: "keep"|"drop"}: see sim/gaps.py
    GET    /_sim/gaps                the running (or last) outage, with the day's high/low
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from hmt.sim.broker import Fills
from hmt.sim.faults import MALFORMED_KINDS, Fault, FaultError
from hmt.sim.gaps import GapError
from hmt.sim.httpd import Request, Response
from hmt.sim.prices import PriceError

if TYPE_CHECKING:
    from hmt.sim.simulator import Simulator


class ControlError(ValueError):
    """A control request that cannot be done; answered with 400 and this message."""


def _ok(data: Any) -> Response:
    return Response.json(200, {"status": "success", "data": data})


class Control:
    """Dispatches /_sim/ requests to the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def handle(self, request: Request) -> Response:
        action = f"{request.method} {request.path.rstrip('/')}"
        handler = self._handlers().get(action)
        if handler is None:
            return Response.json(
                404,
                {
                    "status": "error",
                    "message": f"no control action {action}",
                    "error_type": "GeneralException",
                    "data": None,
                },
            )
        try:
            body = request.json() if request.method == "POST" else None
            return _ok(handler(body))
        except (ControlError, FaultError, GapError, PriceError, ValueError) as exc:
            return Response.json(
                400,
                {
                    "status": "error",
                    "message": str(exc),
                    "error_type": "InputException",
                    "data": None,
                },
            )

    def _handlers(self) -> dict[str, Any]:
        return {
            "GET /_sim/state": self.state,
            "POST /_sim/price": self.price,
            "GET /_sim/orders": lambda _: [
                {**row, "history": self.sim.order_history(row["order_id"])}
                for row in self.sim.orders()
            ],
            "POST /_sim/faults": self.add_faults,
            "GET /_sim/faults": lambda _: [rule.to_json() for rule in self.sim.faults.rules],
            "DELETE /_sim/faults": lambda _: self.sim.faults.clear(),
            "POST /_sim/session/expire": lambda _: self.sim.expire_session(),
            "POST /_sim/session/renew": lambda _: {"access_token": self.sim.renew_session()},
            "POST /_sim/session/request_token": lambda _: {
                "request_token": self.sim.request_token()
            },
            "POST /_sim/ws/drop": lambda _: {"dropped": self.sim.ticker.drop_all()},
            "POST /_sim/ws/stall": self.stall,
            "POST /_sim/ws/resume": lambda _: self.sim.ticker.resume(),
            "POST /_sim/ws/malformed": self.malformed,
            "POST /_sim/funds": self.funds,
            "POST /_sim/fills": self.set_fills,
            "GET /_sim/fills": lambda _: asdict(self.sim.broker.fills),
            "POST /_sim/reset": lambda _: self.sim.reset(),
            "POST /_sim/gaps/jump": self.jump,
            "POST /_sim/gaps/outage": self.outage,
            "GET /_sim/gaps": lambda _: (
                None
                if self.sim.gaps.current is None
                else {
                    **self.sim.gaps.current.to_json(self.sim.market),
                    "active": self.sim.gaps.active,
                }
            ),
        }

    def state(self, _: Any) -> dict[str, Any]:
        sim = self.sim
        funds = sim.broker.funds
        return {
            "api_url": sim.api_url,
            "ws_url": sim.ws_url,
            "seed": sim.seed,
            "api_key": sim.api_key,
            "api_secret": sim.api_secret,
            "access_token": sim.access_token,
            "user_id": sim.sessions.user_id,
            "funds": None if funds is None else str(Decimal(funds) / 100),
            "counters": dict(sim.counters),
            "faults": [r.to_json() for r in sim.faults.rules],
            "faults_fired": dict(sim.faults.fired),
            "instruments": [{"instrument_token": i.token, "key": i.key} for i in sim.universe],
        }

    def price(self, body: Any) -> dict[str, Any]:
        data = _object(body)
        token = data.get("token")
        if not isinstance(token, int) or isinstance(token, bool):
            raise ControlError("token: an integer instrument token is required")
        if "price" not in data or isinstance(data["price"], bool):
            raise ControlError("price: required, in rupees (a string keeps it exact)")
        quote = self.sim.push_price(token, data["price"])
        return {
            "instrument_token": token,
            "last_price": str(Decimal(quote.last) / quote.instrument.divisor),
        }

    def jump(self, body: Any) -> dict[str, Any]:
        data = _object(body)
        token = _token(data)
        if "price" not in data or isinstance(data["price"], bool):
            raise ControlError("price: required, in rupees (a string keeps it exact)")
        quote = self.sim.gaps.jump(token, data["price"])
        return {
            "instrument_token": token,
            "last_price": str(Decimal(quote.last) / quote.instrument.divisor),
        }

    def outage(self, body: Any) -> dict[str, Any]:
        data = _object(body)
        unknown = set(data) - {"token", "level", "seconds", "back", "steps", "socket"}
        if unknown:
            raise ControlError(f"{sorted(unknown)[0]}: not an outage field")
        token = _token(data)
        if "level" not in data or isinstance(data["level"], bool):
            raise ControlError("level: required, the price (rupees) the outage reaches")
        seconds = data.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ControlError("seconds: required, a number of seconds")
        steps = data.get("steps", 10)
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise ControlError("steps: a whole number of trades")
        plan = self.sim.gaps.plan(
            token,
            data["level"],
            seconds=float(seconds),
            back=data.get("back"),
            steps=steps,
            socket=data.get("socket", "keep"),
        )
        return self.sim.gaps.start(plan).to_json(self.sim.market)

    def add_faults(self, body: Any) -> list[dict[str, Any]]:
        specs = body if isinstance(body, list) else [body]
        rules = [Fault.from_json(spec) for spec in specs]  # all valid before any is added
        return [self.sim.faults.add(rule).to_json() for rule in rules]

    def stall(self, body: Any) -> None:
        seconds = _object(body).get("seconds")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
            raise ControlError("seconds: a non-negative number, or null for until resumed")
        self.sim.ticker.stall(seconds)

    def malformed(self, body: Any) -> None:
        kind = _object(body).get("kind", "bad_length")
        if kind not in MALFORMED_KINDS:
            raise ControlError(f"kind: one of {', '.join(MALFORMED_KINDS)}")
        self.sim.ticker.send_malformed(kind)

    def set_fills(self, body: Any) -> dict[str, Any]:
        data = _object(body)
        unknown = set(data) - {"parts", "market"}
        if unknown:
            raise ControlError(f"unknown fills field(s): {', '.join(sorted(unknown))}")
        parts = data.get("parts", self.sim.broker.fills.parts)
        if not isinstance(parts, int) or isinstance(parts, bool):
            raise ControlError("fills.parts must be an integer")
        market = data.get("market", self.sim.broker.fills.market)
        self.sim.broker.fills = Fills(parts=parts, market=str(market))
        return asdict(self.sim.broker.fills)

    def funds(self, body: Any) -> None:
        available = _object(body).get("available")
        if available is None:
            self.sim.broker.funds = None
            return
        try:
            value = Decimal(str(available))
        except InvalidOperation:
            raise ControlError(f"available: {available!r} is not a number") from None
        if not value.is_finite() or value < 0:
            raise ControlError(f"available: {available!r} must be zero or more")
        self.sim.broker.funds = int(value * 100)


def _token(data: dict[str, Any]) -> int:
    token = data.get("token")
    if not isinstance(token, int) or isinstance(token, bool):
        raise ControlError("token: an integer instrument token is required")
    return token


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body
