"""Upstox's tag rule: Kite's 20 alphanumerics, so a trigger's tag is the same on both."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmt.core.types import Leg
from hmt.kite import tags as kite_tags
from hmt.upstox.tags import TAG_LENGTH, broker_tag, parse_tag


@given(st.text(min_size=1, max_size=64), st.sampled_from(list(Leg)), st.integers(0, 19))
def test_the_tag_is_kites_for_the_same_trigger_leg_and_position(
    trigger_id: str, leg: Leg, position: int
) -> None:
    tag = broker_tag(trigger_id, leg, position)
    assert tag == kite_tags.broker_tag(trigger_id, leg, position)
    assert len(tag) == TAG_LENGTH == 20
    assert tag.isalnum()
    parts = parse_tag(tag)
    assert parts is not None
    assert parts.leg is leg


def test_the_algorithm_is_pinned() -> None:
    # A row claimed by any older version must still be found: this value never changes.
    assert broker_tag("t-1", Leg.FIRST) == "HMTI3U3YNDWZEXKET5R1"
    assert broker_tag("t-1", Leg.SECOND, 3) == "HMTJ6DF7OVA5NTGKCZJ2"


@pytest.mark.parametrize("other", ["mktp", "HMT", "HMTAAAAAAAAAAAAAAAA3", "hmtaaaaaaaaaaaaaaaa1"])
def test_other_tags_are_not_ours(other: str) -> None:
    assert parse_tag(other) is None


def test_a_negative_position_is_refused() -> None:
    with pytest.raises(ValueError, match="position"):
        broker_tag("t", Leg.FIRST, -1)
