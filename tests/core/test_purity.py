"""The core stays pure: no I/O, concurrency, clock or randomness imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hmt.core

FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "logging",
    "random",
    "threading",
    "subprocess",
    "os",
    "io",
    "pathlib",
    "select",
    "selectors",
    "signal",
    "secrets",
    "uuid",
    "httpx",
    "websockets",
    "sqlalchemy",
    "structlog",
    "hmt.kite",
    "hmt.store",
    "hmt.engine",
    "hmt.api",
    "hmt.sim",
    "hmt.paper",
    "hmt.backtest",
    "hmt.cli",
    "hmt.logs",
    "hmt.config",
    "hmt.failpoints",
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


# A broker's way of reading an instrument id: its low byte, segment tables and divisors.
TOKEN_DECODING = re.compile(
    r"&\s*0x[fF]{2}\b|&\s*255\b|SEGMENT|segment_of|divisor_for|INDICES_SEGMENT|instrument_token\s*>>"
)


def test_core_decodes_no_instrument_token() -> None:
    """No core module reads meaning out of a token's bits: divisors come with the instrument."""
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in _core_modules()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if TOKEN_DECODING.search(line)
    ]
    assert found == []


def test_token_decoding_pattern_finds_kite_rules() -> None:
    """The pattern above does catch the rules it forbids (so the test can fail)."""
    for line in ("return token & 0xFF", "SEGMENT_DIVISORS = {", "divisor_for(token)"):
        assert TOKEN_DECODING.search(line), line
