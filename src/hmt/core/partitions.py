"""Which partition an instrument is in, which node should hold a partition, and fencing.

The cluster (docs/cluster.md) splits the instruments into `P` partitions; a node
evaluates the triggers of the partitions it holds a lease for. Everything here is
a pure function of its arguments, so every node computes the same answers from
the same inputs without talking to the others.

- `partition_of`: BLAKE2b (8-byte digest, no key) of the UTF-8 text
  `"<broker>:<instrument id>"`, read big-endian as an unsigned integer, modulo `P`.
  Python's `hash()` is salted per process and could not be shared; BLAKE2b is in
  the standard library on every platform and fixed by RFC 7693. The broker's name
  is part of the key because two brokers' numeric ids collide.
- `preferred_owner` / `assignment`: rendezvous (highest random weight) hashing:
  each partition goes to the live node with the greatest weight
  BLAKE2b(`"<node>/<partition>"`). A node leaving moves exactly its own
  partitions; a node joining takes only partitions it now wins.
- `admits`: the fencing rule. A lease's token is the revision at which it was
  acquired (JetStream's stream sequence, which only grows); the database keeps the
  greatest token it has seen per partition and refuses a claim carrying a smaller
  one, so a node whose lease was taken over cannot claim once the new holder
  has fenced.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from hashlib import blake2b

DEFAULT_PARTITIONS = 64
MAX_PARTITIONS = 4096  # a lease key each; past this renewals dominate the bucket's traffic


def _digest(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


def check_partitions(partitions: int) -> int:
    """`partitions` if it is a usable partition count; ValueError naming it otherwise."""
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise ValueError(f"partitions must be an integer, got {partitions!r}")
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be 1-{MAX_PARTITIONS}, got {partitions}")
    return partitions


def partition_of(instrument: int | str, partitions: int, broker: str = "kite") -> int:
    """The partition (0 to `partitions` - 1) of `broker`'s instrument `instrument`."""
    return _digest(f"{broker}:{instrument}") % check_partitions(partitions)


def weight(node: str, partition: int) -> int:
    """The rendezvous weight of `node` for `partition`: the greatest weight wins it."""
    return _digest(f"{node}/{partition}")


def preferred_owner(partition: int, nodes: Iterable[str]) -> str | None:
    """The live node that should hold `partition`; None when no node is live.

    Ties (equal 64-bit weights, vanishingly rare) go to the smaller node id so
    every node agrees.
    """
    best: tuple[int, str] | None = None
    for node in nodes:
        key = (weight(node, partition), node)
        if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
    return None if best is None else best[1]


def assignment(partitions: int, nodes: Collection[str]) -> dict[int, str]:
    """Every partition's preferred owner among `nodes` (empty when none is live)."""
    check_partitions(partitions)
    if not nodes:
        return {}
    owners: dict[int, str] = {}
    for partition in range(partitions):
        owner = preferred_owner(partition, nodes)
        assert owner is not None
        owners[partition] = owner
    return owners


def wanted_by(node: str, partitions: int, nodes: Collection[str]) -> frozenset[int]:
    """The partitions `node` should hold when `nodes` (which it is counted in) are live."""
    live = set(nodes) | {node}
    return frozenset(p for p, owner in assignment(partitions, live).items() if owner == node)


def loads(owners: Mapping[int, str]) -> dict[str, int]:
    """How many partitions each node holds in `owners`."""
    counts: dict[str, int] = {}
    for node in owners.values():
        counts[node] = counts.get(node, 0) + 1
    return counts


def admits(fenced: int | None, token: int) -> bool:
    """Whether a claim carrying lease token `token` may proceed past fence `fenced`.

    `fenced` is the greatest token recorded for the partition (None: never fenced).
    Equal is admitted: the holder's own claims all carry its one token.
    """
    return fenced is None or token >= fenced


def fence_after(fenced: int | None, token: int) -> int:
    """The fence once a claim (or a new holder's fencing write) with `token` is admitted."""
    return token if fenced is None else max(fenced, token)
