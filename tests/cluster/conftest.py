"""Cluster fixtures: a private nats-server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats_server import nats_server


@pytest.fixture
def nats_port(tmp_path: Path) -> Iterator[int]:
    with nats_server(tmp_path) as port:
        yield port


@pytest.fixture
def nats_url(nats_port: int) -> str:
    return f"nats://127.0.0.1:{nats_port}"
