"""Partitions, rendezvous assignment and the fencing rule (hmt.core.partitions)."""

from __future__ import annotations

import math
from hashlib import blake2b

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmt.core.partitions import (
    DEFAULT_PARTITIONS,
    admits,
    assignment,
    check_partitions,
    fence_after,
    loads,
    partition_of,
    preferred_owner,
    wanted_by,
)

node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=24)
node_sets = st.sets(node_ids, min_size=1, max_size=12)
partition_counts = st.sampled_from([1, 7, 16, 64, 256, 1024])


def test_partition_of_is_the_documented_hash() -> None:
    # Pinned: every node of every version must agree, so the rule is the documented one.
    expected = int.from_bytes(blake2b(b"kite:256265", digest_size=8).digest(), "big") % 64
    assert partition_of(256265, 64) == expected
    assert partition_of("256265", 64) == expected  # the id's text is what is hashed
    assert partition_of(256265, 64, broker="upstox") == (
        int.from_bytes(blake2b(b"upstox:256265", digest_size=8).digest(), "big") % 64
    )


@given(st.integers(min_value=0, max_value=2**32), partition_counts)
def test_partition_of_is_in_range(instrument: int, partitions: int) -> None:
    assert 0 <= partition_of(instrument, partitions) < partitions


def test_instruments_spread_over_partitions() -> None:
    counts = [0] * DEFAULT_PARTITIONS
    for token in range(100_000):
        counts[partition_of(token, DEFAULT_PARTITIONS)] += 1
    mean = 100_000 / DEFAULT_PARTITIONS
    # Binomial spread: sigma ~ 39 around 1562; 6 sigma is far outside chance.
    assert max(counts) - mean < 6 * math.sqrt(mean)
    assert mean - min(counts) < 6 * math.sqrt(mean)


@pytest.mark.parametrize("bad", [0, -1, 4097, 2.5, True, "64"])
def test_bad_partition_counts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="partitions"):
        check_partitions(bad)  # type: ignore[arg-type]


def test_no_nodes_no_owner() -> None:
    assert preferred_owner(3, []) is None
    assert assignment(8, []) == {}


@given(partition_counts, node_sets)
def test_every_partition_has_one_live_owner(partitions: int, nodes: set[str]) -> None:
    owners = assignment(partitions, nodes)
    assert set(owners) == set(range(partitions))
    assert set(owners.values()) <= nodes
    # Order of the node list does not matter: every node computes the same map.
    assert owners == assignment(partitions, sorted(nodes, reverse=True))


@settings(derandomize=True)
@given(st.sampled_from([64, 256, 1024]), node_sets)
def test_balance_within_bounds(partitions: int, nodes: set[str]) -> None:
    # Each node's load is Binomial(P, 1/N); 5 sigma each side bounds it outside chance.
    n = len(nodes)
    mean = partitions / n
    sigma = math.sqrt(partitions * (1 / n) * (1 - 1 / n))
    counts = loads(assignment(partitions, nodes))
    for node in nodes:
        assert abs(counts.get(node, 0) - mean) <= 5 * sigma + 1, (node, counts)


def test_three_named_nodes_on_the_default_count() -> None:
    counts = loads(assignment(DEFAULT_PARTITIONS, ["node-1", "node-2", "node-3"]))
    assert sum(counts.values()) == DEFAULT_PARTITIONS
    assert all(12 <= c <= 30 for c in counts.values()), counts


@given(partition_counts, node_sets, st.data())
def test_a_leaving_node_moves_only_its_partitions(
    partitions: int, nodes: set[str], data: st.DataObject
) -> None:
    leaving = data.draw(st.sampled_from(sorted(nodes)))
    before = assignment(partitions, nodes)
    after = assignment(partitions, nodes - {leaving})
    for partition, owner in before.items():
        if owner != leaving:
            assert after[partition] == owner
        else:
            assert after.get(partition) != leaving


@given(partition_counts, node_sets, node_ids)
def test_a_joining_node_takes_only_partitions_it_wins(
    partitions: int, nodes: set[str], joining: str
) -> None:
    before = assignment(partitions, nodes)
    after = assignment(partitions, nodes | {joining})
    for partition, owner in after.items():
        assert owner in (before[partition], joining)
        if owner == joining and joining not in nodes:
            assert before[partition] != joining


@given(partition_counts, node_sets)
def test_wanted_by_partitions_the_whole_range(partitions: int, nodes: set[str]) -> None:
    sets = [wanted_by(node, partitions, nodes) for node in nodes]
    assert sum(len(s) for s in sets) == partitions
    assert frozenset().union(*sets) == frozenset(range(partitions))


def test_fencing_rule() -> None:
    assert admits(None, 1)
    assert admits(10, 10)  # the holder's own token
    assert admits(10, 11)  # a newer holder
    assert not admits(11, 10)  # the old holder after the new one fenced
    assert fence_after(None, 5) == 5
    assert fence_after(7, 5) == 7
    assert fence_after(7, 9) == 9


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=50))
def test_fence_only_grows_and_refuses_every_older_token(tokens: list[int]) -> None:
    fenced: int | None = None
    for seen, token in enumerate(tokens, start=1):
        assert admits(fenced, token) == (fenced is None or token >= fenced)
        if admits(fenced, token):
            fenced = fence_after(fenced, token)
        assert fenced is not None
        assert fenced == max(tokens[:seen])
        assert not admits(fenced, fenced - 1)
