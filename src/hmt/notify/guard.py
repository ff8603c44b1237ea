"""The outbound-address guard, applied where connections are made.

Every library apprise uses (requests/urllib3, smtplib) resolves the host it is
about to connect to with `socket.getaddrinfo`, the first hop and every
redirect alike. Inside `guarded`, on the calling thread only, that lookup
refuses (as a resolution failure: no connection is attempted) a host any of
whose addresses `hmt.core.outbound` forbids. So the addresses judged are the
ones the connection would use: a DNS answer that changed since the URL was
saved, or a redirect to a private address, is refused at the moment it counts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from hmt.core.outbound import Network, refused

_local = threading.local()
_resolve = socket.getaddrinfo


class Refused(socket.gaierror):
    """A host resolved to an address the guard forbids."""


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    found = _resolve(host, port, *args, **kwargs)
    allowed: Sequence[Network] | None = getattr(_local, "allowed", None)
    if allowed is not None:
        bad = refused([str(info[4][0]) for info in found], allowed)
        if bad is not None:
            reason = f"{host} resolves to {bad[0]}, a {bad[1]} address"
            _local.refusals.append(reason)
            raise Refused(socket.EAI_FAIL, f"refused by hmt's outbound rule: {reason}")
    return found


socket.getaddrinfo = _guarded_getaddrinfo


@contextlib.contextmanager
def guarded(allowed: Sequence[Network]) -> Iterator[list[str]]:
    """Refuse forbidden addresses for lookups made on this thread; yields the refusals."""
    refusals: list[str] = []
    _local.allowed, _local.refusals = tuple(allowed), refusals
    try:
        yield refusals
    finally:
        _local.allowed = None


def check_host(host: str, port: int | None, allowed: Sequence[Network]) -> str | None:
    """Why `host` may not be reached (it does not resolve, or an address is forbidden)."""
    with guarded(allowed) as refusals:
        try:
            socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
        except Refused:
            return refusals[0]
        except OSError:
            return f"{host} does not resolve"
    return None
