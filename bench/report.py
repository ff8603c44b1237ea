"""Shared pieces of the benchmark report: the machine, tables, percentiles."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("cpu", f"{cpu} ({os.cpu_count()} cores)"),
        ("memory", memory),
        ("os", platform.platform()),
        ("python", sys.version.split()[0]),
        ("load average at start (1/5/15 min)", _load()),
        ("commit", _git_commit()),
    ]


def _load() -> str:
    """Other work on the machine inflates latencies: say how busy it was."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percentiles(values: Sequence[float], points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of `values` at each of `points` (0-100)."""
    ordered = sorted(values)
    if not ordered:
        return [float("nan")] * len(points)
    last = len(ordered) - 1
    return [ordered[min(last, max(0, round(p / 100 * last)))] for p in points]
