"""Upstox's order tag: what makes an order findable again after any failure.

Upstox, like Kite, has no idempotency key; its `tag` comes back on every row
of the order book and can be looked up (docs/upstox/FACTS.md 2.5-2.6). Its
length limit is not documented, so hmt uses the same 20 alphanumeric
characters as on Kite: `HMT` + 16 base32 characters of SHA-256(trigger id)
+ the leg digit. A trigger's tag is thus the same on either broker (pinned
by tests/upstox/test_tags.py against `hmt.kite.tags`); it is computed here,
not imported, because broker adapters never import each other.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

from hmt.core.types import Leg

PREFIX = "HMT"
_DIGEST_CHARS = 16
TAG_LENGTH = len(PREFIX) + _DIGEST_CHARS + 1  # 20
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


class TagParts(NamedTuple):
    digest: str
    leg: Leg


def broker_tag(trigger_id: str, leg: Leg, position: int = 0) -> str:
    """The tag of the order at `position` of this leg's basket (position 0: the leg's own)."""
    if position < 0:
        raise ValueError(f"position must be 0 or more, not {position}")
    key = trigger_id if position == 0 else f"{trigger_id}:{position}"
    digest = hashlib.sha256(key.encode()).digest()
    body = base64.b32encode(digest)[:_DIGEST_CHARS].decode("ascii")
    return f"{PREFIX}{body}{int(leg)}"


def parse_tag(tag: str) -> TagParts | None:
    """Split one of our tags into digest and leg; None for anything else."""
    if len(tag) != TAG_LENGTH or not tag.startswith(PREFIX) or tag[-1] not in "12":
        return None
    body = tag[len(PREFIX) : -1]
    if not all(c in _BASE32 for c in body):
        return None
    return TagParts(body, Leg(int(tag[-1])))
