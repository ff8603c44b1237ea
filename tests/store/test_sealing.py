"""Sealed secrets: bound to user and field, wrong key and row swaps fail with InvalidTag."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from hmt.store.sealing import Sealer, UnknownSealingKey

KEY = "k" * 32
OTHER = "o" * 32


def test_round_trip_and_fresh_nonce() -> None:
    """A sealed value opens to the plaintext; sealing twice gives different ciphertexts."""
    sealer = Sealer([KEY])
    one = sealer.seal("tok-123", user_id="alice", field="access_token")
    two = sealer.seal("tok-123", user_id="alice", field="access_token")
    assert one != two
    assert "tok-123" not in one
    assert sealer.open(one, user_id="alice", field="access_token") == "tok-123"


def test_wrong_key_fails() -> None:
    """A value sealed under another HMT_SECRET_KEY fails with InvalidTag naming the key."""
    sealed = Sealer([OTHER]).seal("tok", user_id="alice", field="access_token")
    with pytest.raises(InvalidTag, match="HMT_SECRET_KEY") as raised:
        Sealer([KEY]).open(sealed, user_id="alice", field="access_token")
    assert isinstance(raised.value, UnknownSealingKey)


def test_forged_key_id_fails_authentication() -> None:
    """Relabelled with the current key id, a foreign ciphertext still fails AES-GCM's tag."""
    right, wrong = Sealer([KEY]), Sealer([OTHER])
    sealed = wrong.seal("tok", user_id="alice", field="access_token")
    forged = sealed.replace(wrong.current, right.current)
    with pytest.raises(InvalidTag) as raised:
        right.open(forged, user_id="alice", field="access_token")
    assert not isinstance(raised.value, UnknownSealingKey)


@pytest.mark.parametrize(("user", "field"), [("bob", "access_token"), ("alice", "api_secret")])
def test_value_moved_to_another_row_or_field_fails(user: str, field: str) -> None:
    """The associated data binds user and field: a copied ciphertext does not open."""
    sealer = Sealer([KEY])
    sealed = sealer.seal("tok", user_id="alice", field="access_token")
    with pytest.raises(InvalidTag):
        sealer.open(sealed, user_id=user, field=field)


def test_tampering_and_garbage_fail() -> None:
    """A flipped character or something that is not a sealed value fails cleanly."""
    sealer = Sealer([KEY])
    sealed = sealer.seal("tok", user_id="alice", field="access_token")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (flipped, "plain-token", "hmt1.x"):
        with pytest.raises(InvalidTag):
            sealer.open(bad, user_id="alice", field="access_token")


def test_rotation_reseals_under_the_new_key() -> None:
    """With [new, old] keys, old values open and `reseal` moves them to the new key."""
    old = Sealer([OTHER])
    sealed = old.seal("tok", user_id="alice", field="access_token")
    both = Sealer([KEY, OTHER])
    assert both.open(sealed, user_id="alice", field="access_token") == "tok"
    assert both.needs_reseal(sealed)
    moved = both.reseal(sealed, user_id="alice", field="access_token")
    assert not both.needs_reseal(moved)
    assert Sealer([KEY]).open(moved, user_id="alice", field="access_token") == "tok"
    assert both.reseal(moved, user_id="alice", field="access_token") == moved


def test_no_key_and_repr() -> None:
    """No key is a clear error; the repr shows no key material."""
    with pytest.raises(ValueError, match="HMT_SECRET_KEY"):
        Sealer([])
    assert KEY not in repr(Sealer([KEY]))
