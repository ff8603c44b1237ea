"""The order leg's HTTP client: Kite-shaped order posts over loopback, kept alive, per library.

A server in its own process (the simulator's HTTP/1.1 server, `hmt.sim.httpd`,
answering every `POST /orders/regular` with Kite's success envelope at once)
stamps each request's arrival on CLOCK_MONOTONIC (perf_counter_ns, shared by
every process) and returns the stamp in the body. The client posts the form
`hmt.kite.orders.order_form` builds, one request at a time on one kept-alive
connection, and times two things per request: handed to the client -> arrived
at the server (the order leg of the engine's stage table, "request ->
arrives"), and the full round trip (the answer parsed). Each client posts
after an idle gap, as the engine does between orders, and back to back.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bench.report import percentiles, table
from hmt.core.model import OrderIntent
from hmt.core.types import (
    Exchange,
    InstrumentToken,
    Leg,
    OrderType,
    Product,
    Side,
    TriggerId,
)
from hmt.kite.orders import AUTO_MARKET_PROTECTION, order_form
from hmt.kite.rest import KITE_VERSION, KiteRest, client_names
from hmt.waits import within

WARMUP = 20
IDLE_GAP_S = 0.02  # the engine's orders are apart: caches and the socket go cold between


@dataclass(frozen=True)
class Size:
    requests: int  # per client and pattern


FULL = Size(1000)
QUICK = Size(100)
INTENT = OrderIntent(
    trigger_id=TriggerId("0b6c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"),
    leg=Leg.FIRST,
    tag="hmtAbCdEfGhIjKlMnOp",
    instrument_token=InstrumentToken(408065),
    tradingsymbol="INFY",
    exchange=Exchange.NSE,
    side=Side.SELL,
    quantity=10,
    product=Product.CNC,
    order_type=OrderType.MARKET,
    limit_price=None,
    price_divisor=100,
)
HEADERS = {"X-Kite-Version": KITE_VERSION, "Authorization": "token key:access"}


async def _serve() -> None:
    """The server process: print the port, answer until stdin closes."""
    from hmt.sim.httpd import HttpServer, Request, Response

    seq = 0

    async def handle(request: Request) -> Response:
        nonlocal seq
        arrived = time.perf_counter_ns()
        seq += 1
        data = {"order_id": str(151220000000000 + seq), "arrived_ns": arrived}
        return Response.json(200, {"status": "success", "data": data})

    server = HttpServer(handle)
    port = await server.start("127.0.0.1", 0)
    print(port, flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await server.close()


Post = Callable[[dict[str, str]], Awaitable[int]]  # the server's arrival stamp


def _kite(name: str, url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """hmt's own `KiteRest` on the named client: what the engine runs."""
    rest = KiteRest(api_url=url, api_key="key", access_token="access", client=name)  # noqa: S106

    async def post(form: dict[str, str]) -> int:
        data = await rest.request("POST", "/orders/regular", form=form)
        return int(data["arrived_ns"])

    return post, rest.aclose


def _raw_niquests(url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """niquests' AsyncSession, plain (not wired into KiteRest: for the comparison)."""
    import niquests

    session = niquests.AsyncSession()
    session.headers.update(HEADERS)

    async def post(form: dict[str, str]) -> int:
        response = await session.post(f"{url}/orders/regular", data=form, timeout=7)
        body = response.content or b""
        return int(json.loads(body)["data"]["arrived_ns"])

    async def close() -> None:
        await session.close()

    return post, close


def _raw_httpcore(url: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """httpcore's pool (httpx's own transport layer) without httpx's request model."""
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=10, keepalive_expiry=60)
    headers = [*HEADERS.items(), ("Content-Type", "application/x-www-form-urlencoded")]

    async def post(form: dict[str, str]) -> int:
        body = urlencode(form).encode()
        response = await pool.request(
            "POST", f"{url}/orders/regular", headers=headers, content=body
        )
        return int(json.loads(response.content)["data"]["arrived_ns"])

    return post, pool.aclose


ROUNDS = 4  # each client's requests in this many chunks, the clients taking turns


async def _measure(
    makers: list[tuple[str, Callable[[], tuple[Post, Any]]]], size: Size
) -> list[tuple[str, dict[str, list[float]]]]:
    """Every client's samples, the clients taking turns so that load on the machine
    falls on all of them alike."""
    made = [(label, *make()) for label, make in makers]
    form = order_form(INTENT, market_protection=AUTO_MARKET_PROTECTION)
    keys = ("idle_leg", "idle_rtt", "hot_leg", "hot_rtt")
    out: dict[str, dict[str, list[float]]] = {label: {k: [] for k in keys} for label, *_ in made}
    try:
        for _, post, _ in made:
            for _ in range(WARMUP):
                await post(form)
        per_round = max(1, size.requests // ROUNDS)
        for _ in range(ROUNDS):
            for label, post, _ in made:
                for pattern, gap in (("idle", IDLE_GAP_S), ("hot", 0.0)):
                    for _ in range(per_round):
                        if gap:
                            await asyncio.sleep(gap)
                        started = time.perf_counter_ns()
                        arrived = await post(form)
                        done = time.perf_counter_ns()
                        out[label][f"{pattern}_leg"].append((arrived - started) / 1000)
                        out[label][f"{pattern}_rtt"].append((done - started) / 1000)
    finally:
        for _, _, close in made:
            await close()
    return [(label, out[label]) for label, *_ in made]


def candidates(url: str) -> list[tuple[str, Callable[[], tuple[Post, Any]]]]:
    """(label, maker) for every client measured: hmt's KiteRest on each, then raw others."""
    made: list[tuple[str, Callable[[], tuple[Post, Any]]]] = [
        (f"KiteRest on {name}", lambda name=name: _kite(name, url))  # type: ignore[misc]
        for name in client_names()
    ]
    made.append(("httpcore pool (raw)", lambda: _raw_httpcore(url)))
    try:
        import niquests  # noqa: F401
    except ImportError:
        pass
    else:
        made.append(("niquests AsyncSession (raw)", lambda: _raw_niquests(url)))
    return made


async def _all(size: Size) -> list[tuple[str, dict[str, list[float]]]]:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_http", "serve",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        port = int(await within(server.stdout.readline(), 30))
        url = f"http://127.0.0.1:{port}"
        return await _measure(candidates(url), size)
    finally:
        server.stdin.close()
        try:
            await within(server.wait(), 10)
        except TimeoutError:
            server.kill()
            await server.wait()


def _us(values: list[float], point: float) -> str:
    return f"{percentiles(values, [point])[0]:,.0f}"


def run(quick: bool) -> str:
    size = QUICK if quick else FULL
    results = asyncio.run(_all(size))
    rows = [
        (
            label,
            *(
                f"{_us(r[key], 50)} / {_us(r[key], 99)}"
                for key in ("idle_leg", "idle_rtt", "hot_leg", "hot_rtt")
            ),
        )
        for label, r in results
    ]
    return "\n\n".join(
        [
            "## The order leg: HTTP clients on loopback",
            f"How measured: `bench/bench_http.py`. {size.requests:,} Kite-shaped order posts "
            "(`order_form`'s MARKET form) per client and pattern, one at a time on one "
            "kept-alive HTTP/1.1 connection, to the simulator's HTTP server in its own process "
            "answering Kite's success envelope at once; after "
            f"{WARMUP} warm-up posts. 'leg': the request handed to the client -> its arrival "
            "at the server (stamped by the server on the shared CLOCK_MONOTONIC), the stage "
            "table's 'request -> arrives'; 'round trip': until the answer is parsed. 'after "
            f"idle': {IDLE_GAP_S * 1000:g} ms between posts (as between the engine's orders); "
            "'back to back': none. p50 / p99 us. `KiteRest on X` is hmt's transport with "
            "its error classification (HMT_KITE_HTTP=X); '(raw)' rows are the library alone.",
            table(
                [
                    "client",
                    "after idle: leg",
                    "after idle: round trip",
                    "back to back: leg",
                    "back to back: round trip",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(_serve())
    else:
        print(run(quick="--quick" in sys.argv))
