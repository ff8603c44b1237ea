"""Simulator throughput: ticks per second streamed to one WebSocket client over loopback."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.report import table
from hmt.sim.prices import RandomWalk
from hmt.sim.simulator import Simulator
from hmt.sim.universe import Universe

# The client runs in its own process (a second core), with a plain `websockets`
# connection; it counts packets from each frame's 2-byte header, no decoding.
CLIENT = r"""
import asyncio, json, sys, time
from websockets.asyncio.client import connect

async def main(url, mode, tokens, seconds):
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
        await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
        packets = frames = 0
        start = None
        while True:
            message = await ws.recv()
            if not isinstance(message, bytes) or len(message) < 2:
                continue
            now = time.perf_counter_ns()
            if start is None:
                start = now
                continue
            packets += int.from_bytes(message[:2], "big")
            frames += 1
            if now - start >= seconds * 1e9:
                break
    print(json.dumps({"packets": packets, "frames": frames, "ns": now - start}))

url, mode, tokens, seconds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
asyncio.run(main(url, mode, tokens, seconds))
"""
BACKLOG = 20_000  # keep this many packets queued: the sender never waits for the walk
BATCH = 2_000


async def _measure(mode: str, seconds: float) -> dict[str, float]:
    # The built-in instruments only, as the text below says (not the index F&O).
    async with Simulator(seed=1, universe=Universe()) as sim:
        tokens = [i.token for i in sim.universe]
        walk = RandomWalk(sim.market, seed=1)
        url = f"{sim.ws_url}?api_key={sim.api_key}&access_token={sim.access_token}"
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            url,
            mode,
            json.dumps(tokens),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        trades = 0
        deadline = time.perf_counter_ns() + 120e9  # a stuck client must not hang the run
        while client.returncode is None and time.perf_counter_ns() < deadline:
            if sim.ticker.clients and sim.ticker.backlog() < BACKLOG:
                trades += walk.burst(BATCH)
            await asyncio.sleep(0)  # let the sender drain and the loop notice the exit
        out, _ = await client.communicate()
        result = json.loads(out)
        dropped = sum(c.dropped for c in sim.ticker.clients)
        return {
            "packets": result["packets"],
            "frames": result["frames"],
            "seconds": result["ns"] / 1e9,
            "dropped": dropped,
            "trades": trades,
        }


def run(quick: bool) -> str:
    seconds = 1.0 if quick else 5.0
    rows = []
    for mode in ("ltp", "quote", "full"):
        r = asyncio.run(_measure(mode, seconds))
        rate = r["packets"] / r["seconds"]
        rows.append(
            (
                mode,
                f"{r['packets']:,}",
                f"{r['seconds']:.2f}",
                f"{rate:,.0f}",
                f"{r['packets'] / max(1, r['frames']):.0f}",
                f"{r['dropped']:,}",
                "yes" if rate >= 50_000 else "no",
            )
        )
    return "\n".join(
        [
            "## Simulator ticker throughput",
            "",
            f"How measured: `Simulator` in this process runs the seeded random walk over its "
            f"{len(Universe())} instruments as fast as the sender drains (backlog kept near "
            f"{BACKLOG:,} packets); one plain `websockets` client in a subprocess subscribes "
            f"to all of them and counts packets from each frame header for {seconds:g} s over "
            "loopback. It includes generating, encoding and sending every tick (no coalescing).",
            "",
            table(
                [
                    "mode",
                    "ticks delivered",
                    "seconds",
                    "ticks/s",
                    "packets/frame",
                    "dropped",
                    ">= 50,000/s",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
