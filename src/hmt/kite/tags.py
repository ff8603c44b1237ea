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


def broker_tag(trigger_id: str, leg: Leg, position: int = 0) -> str:
    """`HMT` + 16 base32 characters of SHA-256(trigger id) + the leg digit.

    The k-th order (k > 0) of a leg's basket hashes `f"{trigger id}:{k}"`
    instead; position 0 keeps the v1 tag, so a row claimed before baskets
    existed is still found, and a basket's first order is found by the tag
    its claim stored.
    """
    if position < 0:
        raise ValueError(f"position must be 0 or more, not {position}")
    key = trigger_id if position == 0 else f"{trigger_id}:{position}"
    digest = hashlib.sha256(key.encode()).digest()
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
