"""RELIABILITY 3's last figure: the running engine keeps firing triggers after garbage frames.

The simulator sends every connected engine seeded random binary frames, frames
with plausible headers over random bodies, its catalogue of malformed frames and
random text; the engine must count them, keep its socket, and then fire a
trigger on the next real tick (placed once, at the simulator).
"""

from __future__ import annotations

import random
import struct
from typing import Any

from hmt.core.types import Leg
from hmt.kite.tags import broker_tag
from hmt.kite.ticker_protocol import PACKET_SIZES
from hmt.sim.ticker import MALFORMED
from tests.support.eventually import eventually
from tests.support.system import running_system

INFY = 408065
GARBAGE_FRAMES = 300


def garbage(rng: random.Random) -> list[bytes | str]:
    """Random frames: raw bytes, plausible headers over random bodies, and random text."""
    frames: list[bytes | str] = []
    for _ in range(GARBAGE_FRAMES // 3):
        frames.append(rng.randbytes(rng.randrange(2, 400)))
        size = rng.choice([*PACKET_SIZES, 0, 9, 65535])
        body = rng.randbytes(rng.choice([size, size // 2]) if size < 1000 else 50)
        frames.append(struct.pack(">HH", rng.randrange(1, 4), size) + body)
        frames.append("".join(rng.choice('{}[]":,atypev0123456789') for _ in range(30)))
    return frames


async def test_engine_fires_after_garbage_frames(database_url: str) -> None:
    """Garbage is counted, the socket stays up, and the next crossing tick places one order."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    async with running_system(database_url) as system:
        system.push(INFY, "1600.00")
        trigger = await system.create(trigger_price_1="1610.00")
        await eventually(lambda: bool(system.sim.ticker.clients))
        frames = [*garbage(rng), *MALFORMED.values()]
        for client in system.sim.ticker.clients:
            for frame in frames:
                client.say(frame)
        stats: dict[str, Any] = {}

        async def counted() -> bool:
            response = await system.client.get("/stats", headers=system.auth())
            stats.update(response.json())
            ws = stats["ws"]
            return sum(ws["bad_frames"].values()) > 0 and bool(ws["connected"])

        await eventually(counted, within=10.0, interval=0.05)
        system.push(INFY, "1610.00")
        record = await system.settled(trigger["id"])
        ws = stats["ws"]
        print(
            f"\nRELIABILITY 3 engine after garbage seed={seed} frames={len(frames)} "
            f"bad_frames={ws['bad_frames']} reconnects={ws['reconnects']} "
            f"status={record['status']}"
        )
        assert record["status"] == "placed"
        assert len(system.orders_tagged(broker_tag(trigger["id"], Leg.FIRST))) == 1
