"""Named places where a test can make the engine process die at once.

`HMT_FAILPOINTS=after_claim` (comma-separated, each optionally `name@n` to die
on the n-th hit) makes `failpoint("after_claim")` call `os._exit` there: no
cleanup, no flush, no finally blocks — as close to a power cut as a process
can get on its own. Unset, a failpoint is one truthiness check.
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 86  # distinctive, so a test can tell a failpoint from a crash
KNOWN = frozenset(
    {
        "after_claim",
        "after_send",
        "after_response",
        "mid_event_write",
        "between_orders",
        # Brackets: a fill learned, its exits not yet armed; armed, not yet in the book.
        "before_arm",
        "after_arm",
    }
)


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in KNOWN:
            raise ValueError(f"HMT_FAILPOINTS: unknown failpoint {name!r} (known: {sorted(KNOWN)})")
        if nth and not nth.isdigit():
            raise ValueError(f"HMT_FAILPOINTS: {item!r}: the hit count after @ must be a number")
        points[name] = int(nth) if nth else 1
    return points


_armed: dict[str, int] = _parse(os.environ.get("HMT_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    """Exit the process here if `name` is armed and this is its fatal hit."""
    if not _armed:
        return
    remaining = _armed.get(name)
    if remaining is None:
        return
    if remaining > 1:
        _armed[name] = remaining - 1
        return
    sys.stderr.write(f"failpoint {name}: exiting\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)


def arm(spec: str) -> None:
    """Replace the armed set (for tests running in a child process)."""
    _armed.clear()
    _armed.update(_parse(spec))
