"""One notice to one channel URL, through apprise, under the outbound guard.

`screen` is the save-time check of a URL (apprise understands it, it is not a
local-only service, its host is allowed); `deliver` is the send-time one and
the send. Both are blocking (apprise is): the engine runs them on a thread
pool of their own, so a slow service never holds its event loop.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from hmt.core.outbound import Network
from hmt.logs import register_secret
from hmt.notify.guard import check_host, guarded

# Services that notify the machine hmt runs on, not the user: never a user's channel.
LOCAL_SCHEMES = frozenset(
    {"windows", "macosx", "dbus", "kde", "qt", "glib", "gnome", "syslog", "parsep", "mpris"}
)
# Schemes whose URL names the host apprise connects to (others talk to their service's
# fixed public API: the send-time guard still covers them).
OWN_HOST = frozenset(
    {
        "json", "jsons", "xml", "xmls", "form", "forms",
        "apprise", "apprises", "ntfy", "ntfys", "gotify", "gotifys",
        "mmost", "mmosts", "rocket", "rockets", "matrix", "matrixs",
    }
)  # fmt: skip
MAIL = frozenset({"mailto", "mailtos"})

# apprise logs the URLs it posts to (secrets in them are also masked by the redactor);
# its failures reach hmt's log through `DeliveryFailed`.
logging.getLogger("apprise").setLevel(logging.ERROR)


_loaded: list[bool] = []


def load_plugins() -> None:
    """Load apprise's plugins now (about a second, once) rather than in the first request.

    Its e-mail plugin imports `imghdr`, deprecated in Python 3.11: a warning about
    apprise's own code, not ours, silenced only while the plugins load.
    """
    if _loaded:
        return
    _loaded.append(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)


class BadUrl(ValueError):
    """The URL cannot be a channel; the message says why (never the URL itself)."""


class DeliveryFailed(Exception):
    """Not delivered; `refused` True when the outbound rule stopped it (not retried)."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


@dataclass(frozen=True, slots=True)
class Screened:
    hint: str  # apprise's privacy form: what the API may show


def _plugin(url: str) -> Any:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise BadUrl("not a URL: it must look like scheme://... (an apprise URL)")
    if scheme in LOCAL_SCHEMES:
        raise BadUrl(f"{scheme}:// notifies the server's own desktop, not you")
    load_plugins()
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise BadUrl(f"apprise does not understand this {scheme}:// URL")
    return plugin


def secrets_in(url: str) -> list[str]:
    """The parts of `url` that may be a service's secret (masked in every log line)."""
    parts = urlsplit(url)
    found = [url, parts.password or "", parts.username or ""]
    found += [unquote(p) for p in parts.path.split("/")]
    found += [value for _, value in parse_qsl(parts.query)]
    if ":" in parts.netloc.rsplit("@", 1)[-1]:  # a bot token in the host's place (tgram://)
        found.append(parts.netloc.rsplit("@", 1)[-1])
    return [p for p in found if len(p) >= 20 or (len(p) >= 8 and any(ch.isdigit() for ch in p))]


def register(url: str) -> None:
    for part in secrets_in(url):
        register_secret(part)


def screen(url: str, allowed: Sequence[Network]) -> Screened:
    """Save-time check: a `BadUrl` naming the problem, else the URL's hint (blocking)."""
    register(url)
    plugin = _plugin(url)
    scheme = url.split("://", 1)[0].lower()
    hosts: list[tuple[str, int | None]] = []
    if scheme in MAIL and getattr(plugin, "smtp_host", None):
        hosts.append((str(plugin.smtp_host), getattr(plugin, "port", None)))
    elif scheme in OWN_HOST and getattr(plugin, "host", None):
        hosts.append((str(plugin.host), getattr(plugin, "port", None)))
    for host, port in hosts:
        problem = check_host(host, port, allowed)
        if problem is not None:
            raise BadUrl(
                f"refused: {problem} (loopback, private, link-local and metadata "
                "addresses are not allowed; see HMT_NOTIFY_ALLOW_NETS)"
            )
    return Screened(hint=_hint(plugin, scheme))


def _hint(plugin: Any, scheme: str) -> str:
    """apprise's privacy form without its options; a webhook's path (often its key) hidden."""
    text = str(plugin.url(privacy=True)).split("?", 1)[0]
    parts = urlsplit(text)
    if scheme in OWN_HOST and parts.path.strip("/"):
        text = f"{scheme}://{parts.netloc}/…"
    return text[:512]


def deliver(url: str, title: str, body: str, allowed: Sequence[Network], *, timeout: float) -> None:
    """Send one notice (blocking); `DeliveryFailed` with a reason free of the URL's secrets."""
    register(url)
    try:
        plugin = _plugin(url)
    except BadUrl as error:
        raise DeliveryFailed(str(error), refused=True) from None
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    with guarded(allowed) as refusals:
        try:
            sent = plugin.notify(body=body, title=title)
        except Exception as error:  # a plugin's own bug must not end the worker
            raise DeliveryFailed(f"{type(error).__name__} in apprise") from None
    if refusals:
        raise DeliveryFailed(f"refused: {refusals[0]}", refused=True)
    if not sent:
        raise DeliveryFailed("the service did not accept it (unreachable, or an error answer)")
