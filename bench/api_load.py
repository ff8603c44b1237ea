"""The API load for bench_engine_load, in a process of its own: trigger creates.

`python -m bench.api_load CONFIG_JSON` posts far-away BUY triggers (50 % above
the price: they never fire) round-robin over the given instruments and users for
`seconds`, then prints one JSON line: how many were created, how many were
shed (503 or 429: the API refusing past its capacity), other failures, and each
create's and each refusal's latency (us).

Two shapes of load:
- `rate` > 0, open loop: a request starts every 1/rate s whether or not the
  earlier ones have been answered (as clients arrive), so a server that
  queues shows it as latency rather than a lower rate; `behind` counts the
  starts the client itself could not keep up with (more than MAX_OUTSTANDING
  unanswered), so an asked rate that was not sent is reported as such.
- else closed loop: `concurrency` requests in flight, each sent when the
  previous answered (the most the server does, at that many in flight).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx

MAX_OUTSTANDING = 256  # open loop: past this many unanswered, a start is skipped (`behind`)
CONNECTIONS = 64  # kept alive, as an app's pool: more requests wait for one (in their latency)
REQUEST_TIMEOUT_S = 10.0  # a create unanswered this long counts as an error (ReadTimeout)
DRAIN_S = 15.0  # after the run, how long unanswered requests may still finish
SHED = {503, 429}


class Load:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.instruments: list[list[Any]] = config["instruments"]  # [token, tradingsymbol]
        self.tokens: list[str] = config["tokens"]  # one API token per user
        self.latencies_us: list[int] = []
        self.shed_us: list[int] = []
        self.errors: dict[str, int] = {}
        self.sent = 0
        self.behind = 0
        self.outstanding = 0
        self.unanswered = 0  # still waiting DRAIN_S after the run: abandoned
        self.deadline = 0.0  # the end of the load's window
        self.in_window = 0  # creates answered within the window: the throughput

    def request(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The next create's headers (users round-robin) and body."""
        instrument_token, symbol = self.instruments[self.sent % len(self.instruments)]
        token = self.tokens[self.sent % len(self.tokens)]
        self.sent += 1
        return {"Authorization": f"Bearer {token}"}, {
            "instrument_token": instrument_token,
            "exchange": "NSE",
            "tradingsymbol": symbol,
            "trigger_type": "single",
            "transaction_type": "BUY",
            "trigger_price_1": self.config["price"],
            "quantity": 1,
            "product": "CNC",
        }

    async def one(self, client: httpx.AsyncClient) -> None:
        headers, body = self.request()
        started = time.perf_counter_ns()
        self.outstanding += 1
        try:
            response = await client.post("/triggers", json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
            return
        finally:
            self.outstanding -= 1
        took = (time.perf_counter_ns() - started) // 1000  # whole us: a shorter report
        if response.status_code == 201:
            self.latencies_us.append(took)
            self.in_window += time.perf_counter() <= self.deadline
        elif response.status_code in SHED:
            self.shed_us.append(took)
        else:
            code = str(response.status_code)
            self.errors[code] = self.errors.get(code, 0) + 1

    async def closed(self, client: httpx.AsyncClient, deadline: float) -> None:
        async def worker() -> None:
            while time.perf_counter() < deadline:
                await self.one(client)

        await asyncio.gather(*(worker() for _ in range(self.config["concurrency"])))

    async def open(self, client: httpx.AsyncClient, deadline: float, rate: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        began, k = time.perf_counter(), 0
        while (now := time.perf_counter()) < deadline:
            due = int((now - began) * rate) - k
            for _ in range(due):
                k += 1
                if self.outstanding >= MAX_OUTSTANDING:
                    self.behind += 1
                    continue
                task = asyncio.create_task(self.one(client))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.001)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
            self.unanswered = len(pending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def main(config: dict[str, Any]) -> None:
    load = Load(config)
    rate = float(config.get("rate", 0))
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    began = time.perf_counter()
    deadline = load.deadline = began + config["seconds"]
    client = httpx.AsyncClient(base_url=config["url"], timeout=REQUEST_TIMEOUT_S, limits=limits)
    work = load.open(client, deadline, rate) if rate > 0 else load.closed(client, deadline)
    # Whatever happens to the server, the report is printed: a hung run says so. No
    # cancellation (closing hundreds of half-answered connections can itself hang):
    # the report goes out and the process ends (`os._exit` below).
    running = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({running}, timeout=config["seconds"] + DRAIN_S + 5)
    if not done:
        load.errors["client_gave_up"] = 1
        load.unanswered = load.outstanding
    print(
        json.dumps(
            {
                "created": len(load.latencies_us),
                "shed": len(load.shed_us),
                "sent": load.sent,
                "behind": load.behind,
                "unanswered": load.unanswered,
                "errors": load.errors,
                "window_s": config["seconds"],  # rates are over this, not the drain
                "in_window": load.in_window,
                "seconds": time.perf_counter() - began,
                "latencies_us": load.latencies_us,
                "shed_us": load.shed_us,
            }
        ),
        flush=True,
    )
    os._exit(0)  # not closing what a hung run left open: the report is out


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
