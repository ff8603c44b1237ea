"""The API load for bench_engine_load, in a process of its own: trigger creates in a loop.

`python -m bench.api_load CONFIG_JSON` posts far-away BUY triggers (50 % above
the price: they never fire) round-robin over the given instruments, with
`concurrency` requests in flight, for `seconds`; then prints one JSON line: how
many were created, how many failed, and each create's latency (us).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx


async def main(config: dict[str, Any]) -> None:
    url, token, seconds = config["url"], config["token"], config["seconds"]
    instruments: list[list[Any]] = config["instruments"]  # [token, tradingsymbol]
    latencies_us: list[float] = []
    errors: dict[str, int] = {}
    made = [0]
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            instrument_token, symbol = instruments[made[0] % len(instruments)]
            made[0] += 1
            body = {
                "instrument_token": instrument_token,
                "exchange": "NSE",
                "tradingsymbol": symbol,
                "trigger_type": "single",
                "transaction_type": "BUY",
                "trigger_price_1": config["price"],
                "quantity": 1,
                "product": "CNC",
            }
            started = time.perf_counter_ns()
            try:
                response = await client.post("/triggers", json=body)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if response.status_code == 201:
                latencies_us.append((time.perf_counter_ns() - started) / 1000)
            else:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

    headers = {"Authorization": f"Bearer {token}"}
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(config["concurrency"])))
    print(
        json.dumps(
            {
                "created": len(latencies_us),
                "errors": errors,
                "seconds": time.perf_counter() - began,
                "latencies_us": latencies_us,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
