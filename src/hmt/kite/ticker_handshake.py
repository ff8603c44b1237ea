"""The ticker's WebSocket handshake: the URL with its credentials, and keeping them out of logs.

Kite authenticates the upgrade by two query parameters (FACTS.md 1.1), so the
URL carries the access token: only `public_url` (no query) is ever logged, and
websockets' own debug lines, which print the request path, are suppressed.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from hmt import __version__


class _QuietWire(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to websockets, minus its debug lines: they print the request path,
    which carries the access token."""

    def isEnabledFor(self, level: int) -> bool:  # logging's name
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WIRE_LOG = _QuietWire(logging.getLogger("hmt.kite.wire"), {})


def check_token(access_token: str) -> None:
    """ValueError unless the access token is a non-empty string."""
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("access_token must be a non-empty string")


def auth_url(url: str, api_key: str, access_token: str) -> str:
    """`url?api_key=..&access_token=..` (appended to any query it has). Never log it."""
    query = urlencode({"api_key": api_key, "access_token": access_token})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def public_url(url: str) -> str:
    """The URL without query or fragment: what logs may show."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


def redact(exc: BaseException, secret: str) -> str:
    """A short description of `exc` with `secret` blanked out (an invalid-URI error quotes it)."""
    return f"{type(exc).__name__}: {exc}".replace(secret, "***")[:200]


def connect_options(open_timeout_s: float) -> dict[str, Any]:
    """Keyword arguments for `websockets.asyncio.client.connect`."""
    return {
        "additional_headers": {"X-Kite-Version": "3"},
        "user_agent_header": f"hmt/{__version__}",
        "open_timeout": open_timeout_s,
        "close_timeout": 2,
        # Our watchdog judges liveness by Kite's heartbeats; pings would add nothing.
        "ping_interval": None,
        "compression": None,  # as the official client: ticks are small and CPU is not
        "max_size": 2**22,  # 3000 full packets are about 560 KB
        "logger": _WIRE_LOG,
    }
