"""The AES-GCM payload codec and the payload key setting."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from tempoflow.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    new_key,
    parse_payload_keys,
)
from tempoflow.settings import Settings
from tempoflow.temporal_client import data_converter

K1, K2 = new_key(), new_key()


def plain(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


async def test_round_trip_hides_the_plaintext_and_names_the_key() -> None:
    codec = EncryptionCodec.from_spec(f"k1:{K1}")
    original = plain({"card": "4111-1111-1111-1111"})
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert b"4111" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()  # the inner metadata too
    [opened] = await codec.decode([sealed])
    assert opened == original
    # A fresh nonce per payload: the same value never encrypts the same way twice.
    [again] = await codec.encode([original])
    assert again.data != sealed.data


async def test_rotation_encrypts_with_the_first_key_and_decrypts_with_all() -> None:
    old = EncryptionCodec.from_spec(f"k1:{K1}")
    [by_old] = await old.encode([plain("x")])
    rotated = EncryptionCodec.from_spec(f"k2:{K2}, k1:{K1}")
    [by_new] = await rotated.encode([plain("y")])
    assert by_new.metadata[KEY_ID_METADATA] == b"k2"
    assert await rotated.decode([by_old, by_new]) == [plain("x"), plain("y")]
    # The old key alone cannot read what the new one wrote, and says why.
    with pytest.raises(PayloadDecryptionError, match="'k2'"):
        await old.decode([by_new])


async def test_wrong_key_under_the_same_id_and_tampering_are_refused() -> None:
    [sealed] = await EncryptionCodec.from_spec(f"k1:{K1}").encode([plain("x")])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await EncryptionCodec.from_spec(f"k1:{K2}").decode([sealed])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\x00")
    with pytest.raises(PayloadDecryptionError):
        await EncryptionCodec.from_spec(f"k1:{K1}").decode([tampered])


async def test_unencrypted_payloads_pass_through_decoding() -> None:
    codec = EncryptionCodec.from_spec(f"k1:{K1}")
    assert await codec.decode([plain({"a": 1})]) == [plain({"a": 1})]


def test_key_list_parsing() -> None:
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    keys = parse_payload_keys(f"a:{K1},b.2:{urlsafe}")
    assert keys.ids == ("a", "b.2") and keys.current == "a"
    assert keys.keys["b.2"] == b"\xfb" * 32
    for bad, message in [
        ("", "no key"),
        (K1, "kid:base64key"),
        (f"a:{K1},a:{K2}", "twice"),
        ("a:not base64!", "not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "has 5 bytes"),
        (f"bad id:{K1}", "kid:base64key"),
    ]:
        with pytest.raises(PayloadKeyError, match=message):
            parse_payload_keys(bad)


def test_settings_refuse_a_malformed_key_without_echoing_it() -> None:
    secret = base64.b64encode(b"k" * 7).decode()
    with pytest.raises(ValidationError) as err:
        Settings(payload_key=f"k1:{secret}")
    assert "has 7 bytes" in str(err.value) and secret not in str(err.value)


def test_the_data_converter_keeps_pydantic_and_adds_the_codec() -> None:
    assert data_converter(Settings()) is pydantic_data_converter
    converter = data_converter(Settings(payload_key=f"k1:{K1}"))
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert isinstance(converter.payload_codec, EncryptionCodec)


def test_codec_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TEMPOFLOW_CODEC_CORS_ORIGINS", "http://127.0.0.1:8233/, http://localhost:8233"
    )
    assert Settings().codec_cors_origins == ["http://127.0.0.1:8233", "http://localhost:8233"]


async def test_authentic_ciphertext_of_something_else_is_refused() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b"\x00" * 12
    sealed = AESGCM(base64.b64decode(K1)).encrypt(nonce, b"\xff\xff not a payload", None)
    forged = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k1"}, data=nonce + sealed)
    with pytest.raises(PayloadDecryptionError, match="not a serialized payload"):
        await EncryptionCodec.from_spec(f"k1:{K1}").decode([forged])
