"""Helpers for the simulator's tests: waiting for a condition, comparing JSON shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.services import kite_fixture

INFY, SBIN, TATASTEEL, NIFTY, BANKNIFTY = 408065, 779521, 895745, 256265, 260105


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], within: float = 10.0
) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {value!r})")
        await asyncio.sleep(0.01)


def fixture_json(name: str) -> Any:
    return json.loads(kite_fixture(name).read_text())


def shape(value: Any) -> Any:
    """The JSON type skeleton of a value: keys and kinds, not contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def assert_same_shape(
    actual: Any, expected: Any, path: str = "$", *, extra_keys_ok: bool = False
) -> None:
    """`actual` has the fixture's keys and kinds; null matches any kind (Kite fills later)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        missing = set(expected) - set(actual)
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        if not extra_keys_ok:
            extra = set(actual) - set(expected)
            assert not extra, f"{path}: keys the fixture does not have {sorted(extra)}"
        for key in expected:
            assert_same_shape(
                actual[key], expected[key], f"{path}.{key}", extra_keys_ok=extra_keys_ok
            )
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        if expected and actual:
            assert_same_shape(actual[0], expected[0], f"{path}[0]", extra_keys_ok=extra_keys_ok)
    elif expected is not None and actual is not None:
        assert shape(actual) == shape(expected), f"{path}: {actual!r} is not like {expected!r}"
