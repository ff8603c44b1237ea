"""The core stays pure: no I/O, concurrency, clock or randomness imports."""

from __future__ import annotations

import ast
from pathlib import Path

import hmt.core

FORBIDDEN = {
    "asyncio", "socket", "time", "logging", "random", "threading", "subprocess",
    "os", "io", "pathlib", "select", "selectors", "signal", "secrets", "uuid",
    "httpx", "websockets", "sqlalchemy", "structlog", "hmt.kite", "hmt.store",
    "hmt.engine", "hmt.api", "hmt.sim", "hmt.paper", "hmt.cli",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _core_modules() -> list[Path]:
    return sorted(Path(hmt.core.__file__).parent.rglob("*.py"))


def test_core_imports_nothing_impure() -> None:
    """No module in hmt.core imports a forbidden module, directly or as a submodule."""
    offenders = []
    for path in _core_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
            ]
    assert len(_core_modules()) > 5
    assert offenders == []


def test_core_reads_no_clock() -> None:
    """No call in hmt.core reads the clock (datetime.now, time.time and the like)."""
    calls = [
        f"{path.name}:{node.lineno} .{node.func.attr}()"
        for path in _core_modules()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert calls == []
