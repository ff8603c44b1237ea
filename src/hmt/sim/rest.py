"""Kite's REST API over the paper broker: paths, form fields, envelopes, codes.

Success is `{"status":"success","data":...}`; errors are Kite's envelope with
its HTTP status (FACTS 2.1-2.3). Every request first meets the fault plan,
keyed by the endpoint names in ROUTES.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hmt.core.calendar import IST
from hmt.sim.broker import Broker, kite_timestamp
from hmt.sim.errors import KiteError, input_error
from hmt.sim.faults import Fault, FaultKind, FaultPlan
from hmt.sim.history import INTERVALS, MAX_DAYS, candles
from hmt.sim.httpd import Hangup, Request, Response
from hmt.sim.orders import rupees
from hmt.sim.prices import Market, Quote
from hmt.sim.session import Sessions

QUOTE_LIMITS = {"quote": 500, "ltp": 1000, "ohlc": 1000}  # instruments per call (FACTS 2.4)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    public: bool = False  # reachable without an access token


def _route(method: str, path: str, name: str, public: bool = False) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"^{regex}/?$"), name, public)


ROUTES = (
    _route("POST", "/orders/{variety}", "place_order"),
    _route("PUT", "/orders/{variety}/{order_id}", "modify_order"),
    _route("DELETE", "/orders/{variety}/{order_id}", "cancel_order"),
    _route("GET", "/orders", "orders"),
    _route("GET", "/orders/{order_id}", "order_history"),
    _route("GET", "/orders/{order_id}/trades", "order_trades"),
    _route("GET", "/quote", "quote"),
    _route("GET", "/quote/ltp", "ltp"),
    _route("GET", "/quote/ohlc", "ohlc"),
    _route("GET", "/user/profile", "profile"),
    _route("POST", "/session/token", "session_token", public=True),
    _route("DELETE", "/session/token", "session_logout"),
    _route("GET", "/instruments/historical/{token}/{interval}", "historical"),
    _route("GET", "/instruments", "instruments"),
    _route("GET", "/instruments/{exchange}", "instruments"),
    _route("GET", "/connect/login", "login", public=True),
)
ENDPOINTS = tuple(sorted({r.name for r in ROUTES}))


def success(data: Any) -> Response:
    return Response.json(200, {"status": "success", "data": data})


def failure(error: KiteError) -> Response:
    return Response.json(error.status, error.envelope())


class RestApi:
    """Routes a request to the broker, the market or the sessions, with faults first."""

    def __init__(
        self,
        broker: Broker,
        market: Market,
        sessions: Sessions,
        faults: FaultPlan,
        counters: Counter[str],
        clock: Callable[[], float] = time.time,
        seed: int = 1,
    ) -> None:
        self.broker, self.market, self.sessions = broker, market, sessions
        self.seed = seed  # historical candles are a function of it
        self.faults, self.counters, self.clock = faults, counters, clock
        self.redirect_url: str | None = None
        # Further accounts by API key (`Simulator.add_account`): each its own sessions and
        # order book, chosen by the key a request carries, as Kite keeps each user's.
        self.accounts: dict[str, tuple[Sessions, Broker]] = {}
        self._never = asyncio.Event()  # never set: never_answer waits on it until shutdown

    async def handle(self, request: Request) -> Response:
        route, params = self._match(request)
        self.counters[f"rest_{route.name}"] += 1
        fault = self.faults.pick(route.name)
        if fault is not None:
            self.counters[f"fault_{fault.kind.value}"] += 1
            early = await self._before(fault)
            if early is not None:
                return early
        response = self._answer(route, params, request)
        if fault is not None:
            return await self._after(fault, response)
        return response

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in ROUTES:
            found = route.pattern.match(request.path)
            if found:
                allowed = True
                if route.method == request.method:
                    return route, found.groupdict()
        raise_route = "method_not_allowed" if allowed else "not_found"
        return Route(request.method, re.compile(""), raise_route), {}

    async def _before(self, fault: Fault) -> Response | None:
        if fault.kind is FaultKind.LATENCY:
            await asyncio.sleep(fault.delay)
        elif fault.kind is FaultKind.ERROR:
            return failure(KiteError(fault.error_type, fault.text, fault.http_status))
        elif fault.kind is FaultKind.CLOSE:
            raise Hangup
        return None

    async def _after(self, fault: Fault, response: Response) -> Response:
        if fault.kind is FaultKind.ACCEPT_THEN_ERROR:
            return failure(KiteError(fault.error_type, fault.text, fault.http_status))
        if fault.kind is FaultKind.ACCEPT_THEN_CLOSE:
            raise Hangup
        if fault.kind is FaultKind.ACCEPT_THEN_DELAY:
            await asyncio.sleep(fault.delay)
        elif fault.kind is FaultKind.NEVER_ANSWER:
            await self._never.wait()
        return response

    def _answer(self, route: Route, params: dict[str, str], request: Request) -> Response:
        try:
            if route.name == "not_found":
                raise KiteError("GeneralException", f"Route not found: {request.path}", 404)
            if route.name == "method_not_allowed":
                raise KiteError(
                    "GeneralException",
                    f"Method {request.method} not allowed on {request.path}",
                    405,
                )
            version = request.headers.get("x-kite-version")
            if version is not None and version != "3":
                raise input_error(f"Unsupported `X-Kite-Version` {version!r}; this is v3.")
            header = request.headers.get("authorization")
            sessions, broker = self._account(_header_key(header))
            if not route.public:
                sessions.check_header(header)
            if route.name == "instruments":
                return Response(
                    200,
                    self.market.universe.instruments_csv(params.get("exchange")).encode(),
                    "text/csv",
                )
            if route.name == "login":
                return self._login(request)
            return success(self._data(route.name, params, request, broker))
        except KiteError as error:
            return failure(error)

    def _account(self, api_key: str) -> tuple[Sessions, Broker]:
        """The sessions and order book of the account an API key names (the first one's
        when it names none of the others, which then answers as before)."""
        return self.accounts.get(api_key, (self.sessions, self.broker))

    def _data(self, name: str, params: dict[str, str], request: Request, broker: Broker) -> Any:
        form = request.form()
        if name == "place_order":
            return {"order_id": broker.place(params["variety"], form)}
        if name == "modify_order":
            return {"order_id": broker.modify(params["variety"], params["order_id"], form)}
        if name == "cancel_order":
            return {"order_id": broker.cancel(params["variety"], params["order_id"])}
        if name == "orders":
            return broker.book()
        if name == "order_history":
            return broker.history(params["order_id"])
        if name == "order_trades":
            return broker.order_trades(params["order_id"])
        if name in QUOTE_LIMITS:
            return self._quotes(name, request.query.get("i", []))
        if name == "historical":
            return self._historical(params, request.query)
        if name == "profile":
            return self._account(_header_key(request.headers.get("authorization")))[0].profile()
        if name == "session_token":
            sessions = self._account(form.get("api_key", ""))[0]
            token = sessions.exchange(
                form.get("api_key", ""), form.get("request_token", ""), form.get("checksum", "")
            )
            return sessions.session_data(token, kite_timestamp(self.clock()))
        if name == "session_logout":
            self._account(form.get("api_key", ""))[0].invalidate(form.get("access_token", ""))
            return True
        raise KiteError("GeneralException", f"no handler for {name}")  # a routing bug

    def _historical(self, params: dict[str, str], query: dict[str, list[str]]) -> dict[str, Any]:
        """Kite's candles `[timestamp, open, high, low, close, volume(, oi)]` for one
        instrument, deterministic for the seed (`hmt.sim.history`)."""
        token = params["token"]
        instrument = self.market.universe.get(int(token)) if token.isdigit() else None
        if instrument is None:
            raise input_error(f"invalid token: {token}")
        interval = params["interval"]
        if interval not in INTERVALS:
            raise input_error(f"invalid interval: {interval}")
        start, end = (_kite_time(query, name) for name in ("from", "to"))
        if end < start:
            raise input_error("`from` must be before `to`")
        if (end - start).days > MAX_DAYS[interval]:
            raise input_error(
                f"interval exceeds max limit: {MAX_DAYS[interval]} days for {interval}"
            )
        oi = query.get("oi", ["0"])[-1] == "1"
        divisor = instrument.divisor
        rows: list[list[Any]] = []
        for bar in candles(instrument, self.seed, interval, start, end):
            row: list[Any] = [
                bar.at.strftime("%Y-%m-%dT%H:%M:%S%z"),
                *(rupees(p, divisor) for p in (bar.open, bar.high, bar.low, bar.close)),
                bar.volume,
            ]
            rows.append([*row, 0] if oi else row)
        return {"candles": rows}

    def _quotes(self, kind: str, keys: list[str]) -> dict[str, Any]:
        if not keys:
            raise input_error("Missing `i`: give one or more EXCHANGE:TRADINGSYMBOL.")
        if len(keys) > QUOTE_LIMITS[kind]:
            raise input_error(f"At most {QUOTE_LIMITS[kind]} instruments per call.")
        out: dict[str, Any] = {}
        for key in keys:
            instrument = self.market.universe.by_key(key)
            if instrument is None:
                continue  # Kite leaves out keys it has no data for
            q = self.market.quotes[instrument.token]
            out[key] = _quote_json(kind, q, self.clock())
        return out

    def _login(self, request: Request) -> Response:
        """Kite's login page, reduced to its redirect: a fresh request token."""
        api_key = request.query.get("api_key", [""])[-1]
        sessions = self._account(api_key)[0]
        if api_key != sessions.api_key:
            raise input_error("Invalid `api_key`.")
        token = sessions.new_request_token()
        if self.redirect_url:
            sep = "&" if "?" in self.redirect_url else "?"
            location = f"{self.redirect_url}{sep}action=login&status=success&request_token={token}"
            # Kite appends the app's `redirect_params` (a query string) to the redirect.
            passed = request.query.get("redirect_params", [""])[-1]
            if passed:
                location += "&" + urlencode(parse_qsl(passed, keep_blank_values=True))
            return Response(302, b"", "text/plain", {"Location": location})
        return success({"request_token": token})


def _header_key(header: str | None) -> str:
    """The API key of `Authorization: token api_key:access_token` ("" if none)."""
    _, _, credentials = (header or "").partition(" ")
    return credentials.partition(":")[0]


def _kite_time(query: dict[str, list[str]], name: str) -> datetime:
    """A `from`/`to` parameter: `yyyy-mm-dd hh:mm:ss` or `yyyy-mm-dd`, in IST."""
    values = query.get(name)
    if not values:
        raise input_error(f"Missing `{name}`: yyyy-mm-dd hh:mm:ss (IST).")
    text = values[-1].strip()
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=IST)
        except ValueError:
            continue
    raise input_error(f"invalid `{name}`: {text!r} is not yyyy-mm-dd hh:mm:ss")


def _quote_json(kind: str, q: Quote, now: float) -> dict[str, Any]:
    d = q.instrument.divisor
    ohlc = {
        "open": rupees(q.open, d),
        "high": rupees(q.high, d),
        "low": rupees(q.low, d),
        "close": rupees(q.close, d),
    }
    if kind == "ltp":
        return {"instrument_token": q.token, "last_price": rupees(q.last, d)}
    if kind == "ohlc":
        return {"instrument_token": q.token, "last_price": rupees(q.last, d), "ohlc": ohlc}
    bids, asks = q.depth() if not q.instrument.is_index else ([], [])
    band = q.close // 5 // q.instrument.tick * q.instrument.tick  # a 20% circuit, on the grid
    return {
        "instrument_token": q.token,
        "timestamp": kite_timestamp(now),
        "last_trade_time": kite_timestamp(q.trade_time or now),
        "last_price": rupees(q.last, d),
        "last_quantity": q.last_qty,
        "buy_quantity": q.buy_qty,
        "sell_quantity": q.sell_qty,
        "volume": q.volume,
        "average_price": rupees(q.average, d),
        "oi": 0,
        "oi_day_high": 0,
        "oi_day_low": 0,
        "net_change": 0,
        "lower_circuit_limit": rupees(q.close - band, d),
        "upper_circuit_limit": rupees(q.close + band, d),
        "ohlc": ohlc,
        "depth": {
            "buy": [{"price": rupees(p, d), "quantity": n, "orders": o} for n, p, o in bids],
            "sell": [{"price": rupees(p, d), "quantity": n, "orders": o} for n, p, o in asks],
        },
    }
