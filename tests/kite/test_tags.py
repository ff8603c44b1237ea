"""Broker tags: deterministic, within Kite's rules, leg recoverable, collision-free."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.core.types import Leg
from hmt.kite.tags import PREFIX, TAG_LENGTH, broker_tag, parse_tag

PINNED_POSITION_1 = "HMTUQB77YL5PMN7VJWP1"
PINNED_POSITION_19 = "HMT3NPUM6QO7XXULJ4S2"


@given(st.uuids(), st.sampled_from(Leg))
def test_tag_is_deterministic_and_within_kite_rules(trigger_id: uuid.UUID, leg: Leg) -> None:
    """Same input, same tag; at most 20 alphanumeric characters; prefix and leg recoverable."""
    tag = broker_tag(str(trigger_id), leg)
    assert tag == broker_tag(str(trigger_id), leg)
    assert len(tag) == TAG_LENGTH <= 20
    assert tag.isalnum()
    assert tag.isascii()
    assert tag.startswith(PREFIX)
    parts = parse_tag(tag)
    assert parts is not None
    assert parts.leg is leg


def test_legs_of_one_trigger_differ_only_in_the_leg() -> None:
    """The two legs of an oco share the digest and differ in the last character."""
    first, second = broker_tag("t-1", Leg.FIRST), broker_tag("t-1", Leg.SECOND)
    assert first != second
    assert first[:-1] == second[:-1]


def test_foreign_tags_are_not_ours() -> None:
    """Other tags (Kite's own, a user's, near misses) are not parsed as ours."""
    good = broker_tag("t-1", Leg.FIRST)
    for tag in [
        "mktp",
        "autoslice",
        "",
        good[:-1] + "3",
        good + "1",
        "XYZ" + good[3:],
        good[:5] + "0" + good[6:],
        good.lower(),
    ]:
        assert parse_tag(tag) is None, tag


def test_no_collisions_over_a_million_ids() -> None:
    """A million random trigger ids give a million distinct tags."""
    rng = random.Random(20261124)
    print("seed 20261124")
    tags = {
        broker_tag(str(uuid.UUID(int=rng.getrandbits(128), version=4)), Leg.FIRST)
        for _ in range(1_000_000)
    }
    assert len(tags) == 1_000_000


def test_the_algorithm_is_pinned() -> None:
    """Tags of rows claimed by an earlier version stay the same: recovery finds their orders."""
    trigger_id = "3f2b6c1e-9a51-4d7e-8a6b-0c2d9e4f5a17"
    assert broker_tag(trigger_id, Leg.FIRST) == "HMTTQSXVH5W5VIIJFXK1"
    assert broker_tag(trigger_id, Leg.SECOND) == "HMTTQSXVH5W5VIIJFXK2"


def test_basket_positions_are_pinned_and_position_0_is_the_v1_tag() -> None:
    """A basket's k-th order hashes "<id>:<k>"; position 0 is the one-order tag, so a row
    claimed before baskets existed is still found by the tag it stored."""
    trigger_id = "3f2b6c1e-9a51-4d7e-8a6b-0c2d9e4f5a17"
    assert broker_tag(trigger_id, Leg.FIRST, 0) == broker_tag(trigger_id, Leg.FIRST)
    # HMT + base32(SHA-256("3f2b...5a17:1"))[:16] + leg, computed independently below.
    for position, leg in ((1, Leg.FIRST), (19, Leg.SECOND)):
        digest = hashlib.sha256(f"{trigger_id}:{position}".encode()).digest()
        expected = "HMT" + base64.b32encode(digest)[:16].decode() + str(int(leg))
        assert broker_tag(trigger_id, leg, position) == expected
    assert broker_tag(trigger_id, Leg.FIRST, 1) == PINNED_POSITION_1
    assert broker_tag(trigger_id, Leg.SECOND, 19) == PINNED_POSITION_19


def test_a_full_basket_has_distinct_parseable_tags() -> None:
    """Twenty orders of each leg: forty distinct tags, each parsed back to its leg."""
    tags = [broker_tag("t-1", leg, k) for leg in Leg for k in range(20)]
    assert len(set(tags)) == 40
    for tag, leg in zip(tags, [leg for leg in Leg for _ in range(20)], strict=True):
        assert len(tag) == TAG_LENGTH
        assert tag.isalnum()
        parts = parse_tag(tag)
        assert parts is not None
        assert parts.leg is leg


def test_a_negative_position_is_refused() -> None:
    with pytest.raises(ValueError, match="position"):
        broker_tag("t-1", Leg.FIRST, -1)
