"""Suite-wide settings: Hypothesis profiles, the shared Kite facts, service policy."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.support.services import IN_CI

# "ci" is what `make test` runs; "nightly" is the bigger budget for long runs.
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def pytest_report_header() -> list[str]:
    return [
        f"hypothesis profile: {settings._current_profile}",
        f"CI={os.environ.get('CI', '')!s} (services are {'required' if IN_CI else 'optional'})",
    ]
