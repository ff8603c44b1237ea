"""Secrets at rest: AES-256-GCM, keyed from HMT_SECRET_KEY, bound to their user and field.

A sealed value is `hmt1.<key id>.<base64url(nonce || ciphertext+tag)>`. The
associated data names the field and the user, so a ciphertext copied into
another user's row (or another column) fails authentication: `InvalidTag`.
The key id lets several keys coexist while they rotate: `Sealer` decrypts with
any key it holds and always encrypts with the first, and `reseal` moves a value
to the current key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "hmt1"
_SALT = b"hmt sealing v1"  # fixed: the input is already a high-entropy secret
_NONCE = 12


class UnknownSealingKey(InvalidTag):
    """Sealed under a key this process does not hold (HMT_SECRET_KEY changed?)."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose).derive(
        secret.encode()
    )


def _aad(user_id: str, field: str) -> bytes:
    return b"\x00".join([VERSION.encode(), field.encode(), user_id.encode()])


class Sealer:
    """Seals and opens secrets with keys derived from one or more HMT_SECRET_KEY values."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("HMT_SECRET_KEY is required to seal broker tokens")
        self._keys: dict[str, AESGCM] = {}
        self.current = ""
        for secret in secrets:
            # The id is derived separately: it says which key, and nothing about it.
            key_id = hashlib.sha256(_derive(secret, b"key id")).hexdigest()[:8]
            self._keys.setdefault(key_id, AESGCM(_derive(secret, b"aes-256-gcm")))
            self.current = self.current or key_id

    def __repr__(self) -> str:
        return f"Sealer(current={self.current!r}, keys={len(self._keys)})"

    def seal(self, plaintext: str, *, user_id: str, field: str) -> str:
        nonce = os.urandom(_NONCE)
        box = self._keys[self.current].encrypt(nonce, plaintext.encode(), _aad(user_id, field))
        body = base64.urlsafe_b64encode(nonce + box).decode("ascii").rstrip("=")
        return f"{VERSION}.{self.current}.{body}"

    def open(self, sealed: str, *, user_id: str, field: str) -> str:
        """The plaintext; `InvalidTag` for a wrong key, another row's value, or tampering."""
        _, key_id, body = _split(sealed)
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownSealingKey(
                f"{field} was sealed with key {key_id}, which HMT_SECRET_KEY does not provide"
            )
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        nonce, box = raw[:_NONCE], raw[_NONCE:]
        return key.decrypt(nonce, box, _aad(user_id, field)).decode()

    def needs_reseal(self, sealed: str) -> bool:
        return _split(sealed)[1] != self.current

    def reseal(self, sealed: str, *, user_id: str, field: str) -> str:
        """The same secret sealed with the current key (unchanged if it already is)."""
        if not self.needs_reseal(sealed):
            return sealed
        return self.seal(
            self.open(sealed, user_id=user_id, field=field), user_id=user_id, field=field
        )


def _split(sealed: str) -> tuple[str, str, str]:
    parts = sealed.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise InvalidTag("not a value sealed by hmt")
    return parts[0], parts[1], parts[2]
