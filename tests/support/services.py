"""Where the shared Kite fixtures are, and what to do when a service is missing.

Under CI (`CI=true`) a missing service or fixture fails the test; on a
developer's laptop it skips with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HMT_SHARED_DIR", ROOT.parent / "shared"))
KITE_FIXTURES = SHARED / "kite" / "fixtures"


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere: a test that needs `reason`'s service cannot run."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def kite_fixture(name: str) -> Path:
    """The path of a fixture in ../shared/kite/fixtures (never copied into the repo)."""
    path = KITE_FIXTURES / name
    if not path.is_file():
        unavailable(f"Kite fixture {path} is not there (../shared is absent)")
    return path
