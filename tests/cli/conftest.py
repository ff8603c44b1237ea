"""CLI tests start from an environment without any HMT_ variable."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HMT_ variable of the caller's shell leaks into a command under test."""
    for name in [n for n in os.environ if n.startswith("HMT_")]:
        monkeypatch.delenv(name)
