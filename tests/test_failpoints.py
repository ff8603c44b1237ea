"""Failpoints: unset they do nothing; armed they kill the process at the named hit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hmt import failpoints

SCRIPT = """
from hmt.failpoints import failpoint
for i in range(3):
    print("before", i, flush=True)
    failpoint("after_claim")
print("survived", flush=True)
"""


def run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HMT_FAILPOINTS"}
    if spec is not None:
        env["HMT_FAILPOINTS"] = spec
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_unarmed_failpoint_does_nothing() -> None:
    """Without HMT_FAILPOINTS the process runs to the end."""
    result = run(None)
    assert result.returncode == 0
    assert "survived" in result.stdout


def test_armed_failpoint_exits_on_the_nth_hit() -> None:
    """`after_claim@2` exits with the failpoint code on the second hit, before the third."""
    result = run("after_claim@2")
    assert result.returncode == failpoints.EXIT_CODE
    assert result.stdout.split("\n")[:2] == ["before 0", "before 1"]
    assert "survived" not in result.stdout
    assert "failpoint after_claim" in result.stderr


def test_unknown_or_malformed_failpoints_are_refused() -> None:
    """A typo in HMT_FAILPOINTS is an error naming it, not a silently unarmed test."""
    with pytest.raises(ValueError, match="unknown failpoint 'after_clam'"):
        failpoints.arm("after_clam")
    with pytest.raises(ValueError, match="must be a number"):
        failpoints.arm("after_send@x")
    failpoints.arm("")
