"""One cluster node's lease keeper as its own process: `python -m tests.support.lease_node`.

Arguments: NATS URL, node id, partitions, TTL in seconds. It holds leases until
killed (SIGKILL: no release) or sent SIGTERM (a clean leave, leases released).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from hmt.cluster.connection import connect
from hmt.cluster.leases import LeaseKeeper


async def main(url: str, node_id: str, partitions: int, ttl_s: float) -> None:
    nc = await connect(url, ttl_s, name=node_id)
    keeper = LeaseKeeper(nc, node_id, partitions=partitions, ttl_s=ttl_s)
    await keeper.start()
    print("started", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await keeper.stop(release=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
