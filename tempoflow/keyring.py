"""Encryption of secret values at rest: AES-256-GCM with key ids and rotation.

``TEMPOFLOW_SECRETS_KEY`` holds one or more keys (URL-safe base64 of 32 random bytes,
separated by commas): the first encrypts, every one decrypts. Each stored value keeps
the id of the key that encrypted it (a fingerprint, never the key), so rotation is:
put the new key first, keep the old ones after it, run ``tempoflow secrets rotate``
(re-encrypts every value still under an older key), then drop the old keys.

The ciphertext is bound to its tenant and name (GCM associated data): a value copied to
another row does not decrypt. AES-GCM from ``cryptography`` rather than Fernet because
Fernet has no associated data and no key ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_SECRETS_KEY = "CAt5hpZ-jxSzPdj9SAX754BCLasIcT4jEyxFl3oJYbc="
"""The development key (public: it is in this file). Production refuses it."""
NONCE_BYTES = 12


class KeyringError(Exception):
    """A value cannot be decrypted: its key is not configured, or it was altered."""


def parse_keys(text: str) -> list[bytes]:
    """The keys of a ``TEMPOFLOW_SECRETS_KEY`` value, first (encrypting) key first.

    Raises:
        ValueError: no key, or an entry that is not base64 of 32 bytes (the message names
            the entry's position, never its text).
    """
    entries = [e for e in re.split(r"[,\s]+", text.strip()) if e]
    if not entries:
        raise ValueError("TEMPOFLOW_SECRETS_KEY holds no key")
    keys = []
    for position, entry in enumerate(entries, 1):
        try:
            key = base64.urlsafe_b64decode(entry + "=" * (-len(entry) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError(
                f"TEMPOFLOW_SECRETS_KEY entry {position} is not URL-safe base64 of 32 bytes "
                "(`tempoflow secrets generate-key` makes one)"
            )
        keys.append(key)
    return keys


def generate_key() -> str:
    """A new random key in the ``TEMPOFLOW_SECRETS_KEY`` format."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def key_id(key: bytes) -> str:
    """A key's public fingerprint (stored next to what it encrypted)."""
    return hashlib.sha256(b"tempoflow-secrets-key-id|" + key).hexdigest()[:16]


def _aad(tenant: str, name: str) -> bytes:
    return f"tempoflow-secret|{tenant}|{name}".encode()


class Keyring:
    """The configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.primary_id = key_id(keys[0])

    @classmethod
    def from_text(cls, text: str) -> Keyring:
        return cls(parse_keys(text))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, tenant: str, name: str, value: str) -> tuple[str, bytes]:
        """``(key id, nonce + ciphertext)`` of ``value`` under the primary key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(nonce, value.encode(), _aad(tenant, name))
        return self.primary_id, nonce + sealed

    def decrypt(self, tenant: str, name: str, kid: str, blob: bytes) -> str:
        aead = self._keys.get(kid)
        if aead is None:
            raise KeyringError(
                f"secret {name!r} is encrypted with key {kid}, which is not configured "
                "(keep old keys in TEMPOFLOW_SECRETS_KEY until `tempoflow secrets rotate` ran)"
            )
        try:
            plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(tenant, name))
        except InvalidTag:
            raise KeyringError(f"secret {name!r} does not decrypt (altered or moved)") from None
        return plain.decode()
