"""Structured logging, with secrets removed before anything is rendered.

One processor, `SecretRedactor`, runs last before the renderer on every line,
ours and the libraries' (uvicorn, httpx, websockets log through the standard
library, which is routed through the same chain). It masks values under
secret-sounding keys and, wherever it appears inside any string, every value
registered with `register_secret` — the API secret, access tokens, bearer
tokens — so a secret embedded in a URL or an exception message is caught too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

MASK = "***"
SECRET_KEYS = frozenset(
    {
        "access_token",
        "api_secret",
        "authorization",
        "bearer",
        "checksum",
        "password",
        "request_token",
        "secret",
        "secret_key",
        "token",
    }
)
_MIN_SECRET_LENGTH = 6
# Libraries that log every request at INFO (httpx: "HTTP Request: POST ...").
QUIET_AT_INFO = ("httpx", "httpcore")  # shorter values would mask ordinary words


class SecretRedactor:
    """A structlog processor that masks secrets by key and by value."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def register(self, value: str | None) -> None:
        if value and len(value) >= _MIN_SECRET_LENGTH:
            self._values.add(value)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, Mapping):
            return {k: MASK if _is_secret_key(k) else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = MASK if _is_secret_key(key) else self.scrub(value)
        return event_dict


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS


REDACTOR = SecretRedactor()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time, not the one seen at set-up."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def register_secret(value: str | None) -> None:
    """Never let `value` appear in a log line from now on."""
    REDACTOR.register(value)


def configure(*, level: str = "info", json: bool = False) -> None:
    """Set up structlog and route the standard library's logging through the same chain."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            REDACTOR,
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # A line per HTTP request the clients make would bury the engine's own story (one
    # line per fire and per outcome); their warnings and errors still show.
    # At debug they are part of what was asked for.
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for chatty in QUIET_AT_INFO:
        logging.getLogger(chatty).setLevel(quiet)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
