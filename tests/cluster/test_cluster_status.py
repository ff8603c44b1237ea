"""`hmt cluster status`: the live nodes and partition holders, read from a real NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import nats
from typer.testing import CliRunner

from hmt.cli import app
from hmt.cluster.leases import LeaseKeeper
from tests.support.eventually import eventually

P = 8


def _status(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # Its own process: the command runs its own event loop.
    code = "from hmt.cli import app; app(prog_name='hmt')"
    return subprocess.run(
        [sys.executable, "-c", code, "cluster", "status", "--cluster", url, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_status_shows_each_node_and_its_partitions(nats_url: str) -> None:
    ncs = [await nats.connect(nats_url), await nats.connect(nats_url)]
    keepers = [LeaseKeeper(nc, f"node-{i}", partitions=P, ttl_s=3.0) for i, nc in enumerate(ncs)]
    for keeper in keepers:
        await keeper.start()
    try:
        await eventually(
            lambda: sum(len(k.held()) for k in keepers) == P and all(k.held() for k in keepers),
            within=10,
        )
        shown = await asyncio.to_thread(_status, nats_url, "--json")
        assert shown.returncode == 0, shown.stderr
        found = json.loads(shown.stdout)
        assert found["nodes"] == ["node-0", "node-1"]
        for keeper in keepers:
            for partition, token in keeper.held().items():
                entry = found["partitions"][str(partition)]
                assert entry["node"] == keeper.node_id
                assert entry["revision"] >= token
        text = await asyncio.to_thread(_status, nats_url)
        assert text.returncode == 0, text.stderr
        assert "2 live node(s), 8 partition(s) held" in text.stdout
        for keeper in keepers:
            assert f"{keeper.node_id}: {len(keeper.held())} partition(s), live" in text.stdout
    finally:
        for keeper in keepers:
            await keeper.stop()
        for nc in ncs:
            await nc.close()


def test_status_names_a_bad_url() -> None:
    result = CliRunner().invoke(app, ["cluster", "status", "--cluster", "http://x:1"])
    assert result.exit_code == 2
    assert "is not a NATS URL" in result.output


def test_status_says_when_nats_cannot_be_reached() -> None:
    from tests.support.engine_process import free_port

    url = f"nats://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["cluster", "status", "--cluster", url])
    assert result.exit_code == 1
    assert f"cannot read the leases at {url}" in result.output
