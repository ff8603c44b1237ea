"""HMT_CLUSTER_PARTITIONS is the cluster's, like the lease TTL: the lease bucket records
the count it was made with, and a node configured with another is refused at start
(exit 2, both values named) instead of repairing every row to its own count."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from hmt.cluster.connection import connect
from hmt.cluster.leases import (
    DEFAULT_BUCKET,
    ClusterConfigError,
    LeaseKeeper,
    open_bucket,
    recorded_partitions,
)
from hmt.sim.simulator import Simulator
from tests.support.engine_process import engine_process
from tests.support.postgres import private_database

TTL = 1.5


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect(nats_url, TTL, persistent=False)
    yield client
    await client.close()


async def test_another_partition_count_is_refused(nc: Client) -> None:
    await open_bucket(nc, DEFAULT_BUCKET, TTL, partitions=16)
    await open_bucket(nc, DEFAULT_BUCKET, TTL, partitions=16)  # the same count: welcome
    with pytest.raises(ClusterConfigError) as refused:
        await open_bucket(nc, DEFAULT_BUCKET, TTL, partitions=64)
    message = str(refused.value)
    assert "records 16 partitions" in message
    assert "configured with 64" in message
    assert "HMT_CLUSTER_PARTITIONS must be the same on every node" in message


async def test_a_lease_keeper_checks_the_count_too(nc: Client) -> None:
    first = LeaseKeeper(nc, "node-a", partitions=8, ttl_s=TTL)
    await first.start()
    try:
        other = LeaseKeeper(nc, "node-b", partitions=9, ttl_s=TTL)
        with pytest.raises(ClusterConfigError, match="records 8 partitions"):
            await other.start()
    finally:
        await first.stop()


async def test_a_bucket_without_a_count_gets_the_first_nodes(nc: Client) -> None:
    """A bucket made by a tool (or before the check) records nothing: the first node to
    open it writes its count, and the next node is checked against it."""
    await open_bucket(nc, DEFAULT_BUCKET, TTL)
    kv = await open_bucket(nc, DEFAULT_BUCKET, TTL, partitions=32)
    status = await kv.status()
    assert recorded_partitions(status.stream_info.config.description) == 32
    assert status.ttl == pytest.approx(TTL)  # the rest of the bucket is unchanged
    with pytest.raises(ClusterConfigError, match="records 32 partitions"):
        await open_bucket(nc, DEFAULT_BUCKET, TTL, partitions=64)


def test_the_record_is_read_from_the_description() -> None:
    assert recorded_partitions("hmt partition leases; partitions=4096") == 4096
    assert recorded_partitions(None) is None
    assert recorded_partitions("made by hand") is None
    assert recorded_partitions("subpartitions=3") is None


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=16) as running:
        yield running


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_database("hmt_cluster_partitions") as url:
        yield url


@pytest.mark.pg
async def test_a_node_with_another_partition_count_is_refused(
    sim: Simulator, pg_url: str, nats_url: str, nc: Client, tmp_path: Path
) -> None:
    """`hmt run --cluster` with the default 64 partitions against a cluster of 16: exit 2
    before anything starts, both values named."""
    await open_bucket(nc, DEFAULT_BUCKET, 3.0, partitions=16)  # the cluster's (default TTL)
    async with engine_process(
        sim, pg_url, tmp_path, engine_id="node-2", cluster_url=nats_url
    ) as node:
        assert await node.exited(within=60) == 2
        output = node.output()
        assert "HMT_CLUSTER_PARTITIONS must be the same on every node" in output
        assert "records 16 partitions" in output
        assert "configured with 64" in output
