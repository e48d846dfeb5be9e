"""Encrypted Temporal payloads: an AES-GCM ``PayloadCodec`` with rotating keys.

With ``TEMPOFLOW_PAYLOAD_KEY`` set, every payload the API, the dispatcher and the worker
send to Temporal (workflow and activity inputs and results, signals, updates, queries,
failure details) is encrypted before it leaves the process, so Temporal's history holds
only ciphertext. The setting lists keys as ``kid:base64key`` separated by commas; the
first encrypts, all decrypt, so a key is rotated by putting a new one first and keeping
the old ones until no history needs them.

An encrypted payload has the encoding ``binary/encrypted``, the key id in its
``encryption-key-id`` metadata and ``nonce (12 bytes) || AES-GCM(serialized payload)`` as
data. Payloads with another encoding pass through decoding unchanged (history written
before encryption was switched on stays readable).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KEY_SIZES = (16, 24, 32)


class PayloadKeyError(ValueError):
    """``TEMPOFLOW_PAYLOAD_KEY`` is malformed (the message says which part, never a key)."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: its key id is unknown, or the ciphertext
    does not authenticate under that key (wrong key, tampered data)."""


@dataclass(frozen=True)
class PayloadKeys:
    """Key ids in order (the first encrypts) and their AES keys."""

    ids: tuple[str, ...]
    keys: dict[str, bytes]

    @property
    def current(self) -> str:
        return self.ids[0]


def parse_payload_keys(spec: str) -> PayloadKeys:
    """Parse ``kid1:base64key,kid2:base64key`` (16, 24 or 32 byte keys, standard or
    URL-safe base64)."""
    ids: list[str] = []
    keys: dict[str, bytes] = {}
    for n, part in enumerate(p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        kid = kid.strip()
        if not sep or not KEY_ID_PATTERN.match(kid):
            raise PayloadKeyError(
                f"entry {n + 1} is not 'kid:base64key' (key ids match {KEY_ID_PATTERN.pattern})"
            )
        if kid in keys:
            raise PayloadKeyError(f"key id {kid!r} appears twice")
        try:
            raw = base64.b64decode(encoded.strip(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            try:
                raw = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"key {kid!r} is not valid base64") from None
        if len(raw) not in KEY_SIZES:
            raise PayloadKeyError(
                f"key {kid!r} has {len(raw)} bytes; AES-GCM needs 16, 24 or 32 (32 recommended)"
            )
        ids.append(kid)
        keys[kid] = raw
    if not ids:
        raise PayloadKeyError("no key given; expected 'kid:base64key[,kid2:base64key…]'")
    return PayloadKeys(tuple(ids), keys)


def new_key() -> str:
    """A fresh 32-byte key, base64-encoded (for ``TEMPOFLOW_PAYLOAD_KEY``)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole serialized payloads; the first key encrypts, every key
    decrypts."""

    def __init__(self, keys: PayloadKeys) -> None:
        self.keys = keys
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.keys.items()}
        self._current = keys.current.encode()

    @classmethod
    def from_spec(cls, spec: str) -> EncryptionCodec:
        return cls(parse_payload_keys(spec))

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.keys.current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {kid!r}, which is not among the configured "
                f"keys {list(self.keys.ids)}"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload does not authenticate under key {kid!r}"
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError:
            raise PayloadDecryptionError(
                f"payload decrypted under key {kid!r} is not a serialized payload"
            ) from None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]


def is_encrypted(payloads: Iterable[Payload]) -> bool:
    """Whether every payload has the encrypted encoding."""
    return all(p.metadata.get("encoding") == ENCODING for p in payloads)
