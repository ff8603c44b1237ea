"""Suite-wide settings: Hypothesis profiles, the shared Kite facts, service policy."""

from __future__ import annotations

import os

import structlog
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

# In-process tests log through structlog's default chain (`hmt run` configures its own,
# `hmt.logs`, whose tracebacks are plain text). The default renders an exception with
# rich, every frame's locals pretty-printed: with an app, a store and a book in those
# frames that took over 10 s per error (rich 15), on whichever thread logged it, and a
# test waiting on that thread timed out. Plain tracebacks, as in production.
structlog.configure(
    processors=[
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)


def pytest_report_header() -> list[str]:
    return [
        f"hypothesis profile: {settings._current_profile}",
        f"CI={os.environ.get('CI', '')!s} (services are {'required' if IN_CI else 'optional'})",
    ]
