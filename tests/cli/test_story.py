"""The terminal tells the story (issue 18): `hmt demo` logs one readable line per fire and
per outcome (symbol, side, quantity, price, order id, latency), and no HTTP client
request lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.children import interruptible
from tests.support.engine_process import free_port

HMT = Path(sys.executable).with_name("hmt")
FIRED = re.compile(
    r"\] fired (?P<symbol>[A-Z]+): (?P<side>BUY|SELL) (?P<qty>\d+) "
    r"at ltp (?P<price>\d+\.\d\d) \(price, leg [12]\)"
)
PLACED = re.compile(
    r"\] placed (?P<symbol>[A-Z]+): (?P<side>BUY|SELL) (?P<qty>\d+) MARKET, order (?P<order>\d+), "
    r"(?P<ms>\d+\.\d) ms after the fire"
)


def test_demo_logs_a_line_per_fire_and_per_placed_order(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMT_")}
    env |= {"HMT_HOST": "127.0.0.1", "HMT_PORT": str(free_port())}
    seen: list[str] = []
    with subprocess.Popen(
        [str(HMT), "demo", "--speed", "8"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    ) as process:
        try:
            assert process.stderr is not None
            fired: dict[str, re.Match[str]] = {}
            placed: dict[str, re.Match[str]] = {}
            for line in process.stderr:
                seen.append(line)
                trigger = re.search(r"trigger_id=(\S+)", line)
                if trigger and (found := FIRED.search(line)):
                    fired[trigger.group(1)] = found
                if trigger and (found := PLACED.search(line)):
                    placed[trigger.group(1)] = found
                if set(placed) & set(fired):
                    break
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    both = set(placed) & set(fired)
    assert both, "".join(seen)
    trigger_id = both.pop()
    fire, order = fired[trigger_id], placed[trigger_id]
    # The outcome's line tells the same order the fire's did.
    assert (order["symbol"], order["side"], order["qty"]) == (
        fire["symbol"],
        fire["side"],
        fire["qty"],
    )
    assert order["symbol"] in {"INFY", "RELIANCE", "TCS", "HDFCBANK", "ICICIBANK", "SBIN"}
    assert float(fire["price"]) > 0
    assert float(order["ms"]) >= 0
    assert not any("HTTP Request" in line for line in seen)
