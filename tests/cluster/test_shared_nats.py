"""Leases on the machine's own NATS (127.0.0.1:4222), in a bucket of this test's own."""

from __future__ import annotations

import secrets

import nats

from hmt.cluster.leases import LeaseKeeper
from tests.support.eventually import eventually
from tests.support.nats_server import shared_nats_url


async def test_two_keepers_share_a_private_bucket_on_the_shared_server() -> None:
    url = shared_nats_url()
    bucket = f"hmt_test_{secrets.token_hex(4)}"  # helpers and CI runs must not collide
    first, second = await nats.connect(url), await nats.connect(url)
    try:
        a = LeaseKeeper(first, "node-a", partitions=8, ttl_s=1.5, bucket=bucket)
        b = LeaseKeeper(second, "node-b", partitions=8, ttl_s=1.5, bucket=bucket)
        await a.start()
        await b.start()

        def shared() -> bool:
            held_a, held_b = set(a.held()), set(b.held())
            return held_a | held_b == set(range(8)) and not held_a & held_b and bool(held_b)

        await eventually(shared, within=6)
        await a.stop()
        await b.stop()
    finally:
        await first.jetstream().delete_key_value(bucket)
        await first.close()
        await second.close()
