"""Kite's order tag: what makes an order findable again after any failure.

Kite has no idempotency key; its `tag` (at most 20 alphanumeric characters)
is the only thing an order carries back from the order book. The tag is a
pure function of (trigger id, leg), so a retry computes the same one and can
ask the broker whether the order already exists. The rule is Kite's, so it
lives in the Kite adapter (`KiteOrders.tag`); the claim stores the tag on the
row and recovery reads it from there. The algorithm must never change while
a row made by an older version may still be in flight: pinned by a test.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

from hmt.core.types import Leg

PREFIX = "HMT"
_DIGEST_CHARS = 16  # 80 bits of SHA-256: collisions are out of reach for any book
TAG_LENGTH = len(PREFIX) + _DIGEST_CHARS + 1  # 20, Kite's maximum


class TagParts(NamedTuple):
    digest: str
    leg: Leg


def broker_tag(trigger_id: str, leg: Leg) -> str:
    """`HMT` + 16 base32 characters of SHA-256(trigger id) + the leg digit."""
    digest = hashlib.sha256(trigger_id.encode()).digest()
    # base32's alphabet (A-Z, 2-7) is alphanumeric, as Kite requires.
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


_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
