"""The Dockerfile cannot be built here (no registry for base images), so what can be checked
without building is: every HMT_ setting it sets is one hmt reads and takes as valid, it
serves on all interfaces, and it runs `hmt run` with the database on its volume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hmt.config import PREFIX, Settings, load_settings

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def env_of(text: str) -> dict[str, str]:
    joined = text.replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            pairs |= dict(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_the_dockerfile_settings_are_valid_and_it_runs_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = DOCKERFILE.read_text()
    env = env_of(text)
    hmt = {k: v for k, v in env.items() if k.startswith("HMT_")}
    known = {PREFIX + name.upper() for name in Settings.model_fields}
    assert set(hmt) <= known, set(hmt) - known
    assert hmt["HMT_DATABASE_URL"] == "sqlite:////data/hmt.db"
    assert hmt["HMT_HOST"] == "0.0.0.0"  # noqa: S104 (a container serves on its own interfaces)
    for name, value in hmt.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # a bad or unknown value would raise, naming it
    assert settings.port == int(hmt["HMT_PORT"])
    assert settings.engine_instance() == hmt["HMT_ENGINE_ID"]
    assert 'VOLUME ["/data"]' in text
    assert f"EXPOSE {hmt['HMT_PORT']}" in text
    assert re.search(r'^CMD \["hmt", "run"\]$', text, re.MULTILINE)
    assert "USER hmt" in text  # not root
