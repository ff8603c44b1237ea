"""The whole simulator: `hmt sim` from the command line, the walk and replay running live."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from hmt.sim.simulator import Simulator
from hmt.waits import within
from tests.sim.support import INFY, eventually
from tests.support.children import interruptible

HMT = str(Path(sys.executable).with_name("hmt"))  # the installed console script


async def test_hmt_sim_prints_urls_and_credentials_that_work(tmp_path: Path) -> None:
    """`hmt sim --port 0` prints env lines for the engine; the URLs and token answer."""
    process = await asyncio.create_subprocess_exec(
        HMT,
        "sim",
        "--port",
        "0",
        "--seed",
        "9",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=interruptible,
    )
    try:
        assert process.stdout is not None
        env = {}
        while len(env) < 5:
            line = (await within(process.stdout.readline(), 30)).decode().strip()
            assert line, "hmt sim exited early"
            key, _, value = line.partition("=")
            env[key] = value
        headers = {
            "Authorization": f"token {env['HMT_KITE_API_KEY']}:{env['HMT_KITE_ACCESS_TOKEN']}"
        }
        async with httpx.AsyncClient(base_url=env["HMT_KITE_API_URL"], headers=headers) as c:
            assert (await c.get("/user/profile")).status_code == 200
        ws_url = (
            f"{env['HMT_KITE_WS_URL']}?api_key={env['HMT_KITE_API_KEY']}"
            f"&access_token={env['HMT_KITE_ACCESS_TOKEN']}"
        )
        async with connect(ws_url) as ws:
            await ws.send(json.dumps({"a": "mode", "v": ["ltp", [INFY]]}))
            assert len(await within(ws.recv(), 10)) > 4
    finally:
        process.send_signal(signal.SIGINT)
        await within(process.wait(), 30)
    assert process.returncode == 0


async def test_hmt_sim_refuses_a_bad_replay_file(tmp_path: Path) -> None:
    """A bad replay row stops `hmt sim` before serving, naming the line and field."""
    replay = tmp_path / "ticks.csv"
    replay.write_text("timestamp,token,ltp\n1,408065,1500\n2,408065,cheap\n")
    process = await asyncio.create_subprocess_exec(
        HMT,
        "sim",
        "--port",
        "0",
        "--replay",
        str(replay),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await within(process.communicate(), 30)
    assert process.returncode == 2
    assert b"replay line 3, field ltp" in err


async def test_walk_runs_live_and_streams(tmp_path: Path) -> None:
    """With the walk on, prices move by themselves and reach subscribers."""
    async with Simulator(seed=2, walk=True, walk_speed=20.0) as sim:
        start = sim.market.quotes[INFY].seq
        await eventually(lambda: sim.market.quotes[INFY].seq > start + 5)


async def test_replay_runs_live(tmp_path: Path) -> None:
    """A replay file given to the simulator is played into the market."""
    replay = tmp_path / "ticks.csv"
    replay.write_text("0,408065,1490\n0.01,408065,1491.5\n")
    async with Simulator(seed=2, replay=replay, replay_speed=10.0) as sim:
        await eventually(lambda: sim.market.quotes[INFY].last == 149150)
        assert sim.replay is not None
        assert sim.replay.played == 2


async def test_hooks_see_frames_before_sending_and_requests_on_arrival() -> None:
    """`ticker.on_frame` gets each frame's packets and `on_request` each REST request."""
    async with Simulator(seed=3) as sim:
        frames: list[list[bytes]] = []
        requests: list[tuple[str, str]] = []
        sim.ticker.on_frame = frames.append
        sim.on_request = lambda request: requests.append((request.method, request.path))
        url = f"{sim.ws_url}?api_key={sim.api_key}&access_token={sim.access_token}"
        async with connect(url) as ws:
            await ws.send(json.dumps({"a": "mode", "v": ["ltp", [INFY]]}))
            await within(ws.recv(), 10)  # the snapshot
            sim.push_price(INFY, "1600.10")
            received = await within(ws.recv(), 10)
        packets = [p for batch in frames for p in batch]
        assert INFY.to_bytes(4, "big") + (160010).to_bytes(4, "big") in packets
        assert isinstance(received, bytes)
        assert received.endswith(packets[-1])
        headers = {"Authorization": f"token {sim.api_key}:{sim.access_token}"}
        async with httpx.AsyncClient(base_url=sim.api_url, headers=headers) as client:
            assert (await client.get("/user/profile")).status_code == 200
        assert requests == [("GET", "/user/profile")]
