"""Secret store keys (encryption, rotation, production refusal), references and masking."""

from __future__ import annotations

import logging

import pytest
from temporalio.exceptions import ApplicationError

from activities.secrets import _active, _masked_error, install_log_masking
from tempoflow.definition import validate_definition
from tempoflow.definition.validation import secret_references, unknown_secret_issues
from tempoflow.keyring import DEV_SECRETS_KEY, Keyring, KeyringError, generate_key, parse_keys
from tempoflow.secrets import Masker, iter_references, marker, substitute
from tempoflow.settings import Settings

CANARY = "canary-Zq9'x\"y\nz"


def test_encrypt_decrypt_bound_to_tenant_and_name() -> None:
    ring = Keyring.from_text(generate_key())
    kid, blob = ring.encrypt("t1", "api", "s3cret-value")
    assert b"s3cret-value" not in blob and kid == ring.primary_id
    assert ring.decrypt("t1", "api", kid, blob) == "s3cret-value"
    with pytest.raises(KeyringError, match="altered or moved"):
        ring.decrypt("t2", "api", kid, blob)  # copied to another tenant
    with pytest.raises(KeyringError, match="altered or moved"):
        ring.decrypt("t1", "other", kid, blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyringError):
        ring.decrypt("t1", "api", kid, tampered)


def test_rotation_first_key_encrypts_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    before = Keyring.from_text(old)
    kid_old, blob = before.encrypt("t", "n", "value-1")
    after = Keyring.from_text(f"{new}, {old}")
    assert after.primary_id != kid_old
    assert after.decrypt("t", "n", kid_old, blob) == "value-1"
    kid_new, blob_new = after.encrypt("t", "n", "value-1")
    assert kid_new == after.primary_id
    only_new = Keyring.from_text(new)
    assert only_new.decrypt("t", "n", kid_new, blob_new) == "value-1"
    with pytest.raises(KeyringError, match="not configured"):
        only_new.decrypt("t", "n", kid_old, blob)


# Fixed values: pytest-xdist workers must collect the same ids (a generated key is random).
GOOD_KEY = "dSwD_sS-iH88FX9ZOEOKHCZb-PyNm_Gg8afFgymBaIE="


@pytest.mark.parametrize("text", ["", "abc", "a" * 44, f"{GOOD_KEY},short"])
def test_malformed_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_keys(text)
    assert text not in str(info.value) or text == ""


def test_production_refuses_the_development_key() -> None:
    prod = {
        "environment": "production",
        "api_key_pepper": "pepper-x",
        "database_url": "postgresql://db/x",
        "temporal_address": "temporal:7233",
    }
    with pytest.raises(ValueError, match="TEMPOFLOW_SECRETS_KEY") as info:
        Settings(**prod)  # type: ignore[arg-type]
    assert DEV_SECRETS_KEY not in str(info.value)
    key = generate_key()
    with pytest.raises(ValueError, match="TEMPOFLOW_SECRETS_KEY"):
        Settings(**prod, secrets_key=f"{key},{DEV_SECRETS_KEY}")  # type: ignore[arg-type]
    settings = Settings(**prod, secrets_key=key)  # type: ignore[arg-type]
    assert key not in repr(settings)
    assert settings.keyring.key_ids == Keyring.from_text(key).key_ids
    with pytest.raises(ValueError) as info:
        Settings(secrets_key="not-a-key")  # type: ignore[arg-type]
    assert "not-a-key" not in str(info.value)


def test_references_found_and_substituted_anywhere() -> None:
    data = {"a": {"$secret": "x"}, "b": [1, {"c": {"$secret": "y"}}], "d": {"$secret": "x", "e": 1}}
    assert list(iter_references(data)) == [("/a", "x"), ("/b/1/c", "y")]
    assert substitute(data, {"x": "X", "y": "Y"}) == {
        "a": "X",
        "b": [1, {"c": "Y"}],
        "d": {"$secret": "x", "e": 1},
    }


def test_masker_masks_values_and_their_quoted_forms() -> None:
    m = Masker({"c": CANARY})
    assert m.text(f"bad {CANARY}!") == f"bad {marker('c')}!"
    assert CANARY.replace("\n", "\\n") not in m.text(repr(CANARY))
    import json

    assert m.contains(json.dumps(CANARY)) and not m.contains(m.text(json.dumps(CANARY)))
    assert m.value({"k": [CANARY, 1, {CANARY: None}]}) == {
        "k": [marker("c"), 1, {marker("c"): None}]
    }


def test_masked_errors_carry_no_value_and_no_cause() -> None:
    m = Masker({"c": CANARY})
    try:
        raise ApplicationError(f"denied {CANARY}", {"echo": CANARY}, type="Denied")
    except ApplicationError as err:
        masked = _masked_error(err, m)
    assert masked.type == "Denied" and CANARY not in masked.message
    assert CANARY not in str(masked.details) and masked.__cause__ is None
    plain = _masked_error(KeyError(CANARY), m)
    assert plain.type == "KeyError" and not plain.non_retryable and CANARY not in plain.message


def test_log_records_made_during_an_attempt_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    caplog.set_level(logging.DEBUG)
    token = _active.set(Masker({"c": CANARY}))
    try:
        logging.getLogger("some.library").warning("sent %s", CANARY)
        logging.getLogger("temporalio.activity").info("x", extra={"fields": {"pw": CANARY}})
        try:
            raise ValueError(CANARY)
        except ValueError:
            logging.getLogger("other").exception("failed")
    finally:
        _active.reset(token)
    logging.getLogger("some.library").warning("after %s", "plain")
    assert CANARY not in caplog.text
    assert marker("c") in caplog.text
    assert all(CANARY not in str(r.__dict__) for r in caplog.records)
    assert "after plain" in caplog.text


def test_publish_checks_reference_placement_and_names() -> None:
    body = {
        "steps": [
            {
                "id": "a",
                "type": "action.call",
                "action": "core.noop",
                "input": {"k": {"$secret": "api-key"}, "bad": {"$secret": 5}},
            },
            {"id": "b", "type": "state.set", "values": {"x": {"$secret": "api-key"}}},
        ],
        "output": {"y": {"$secret": "api-key"}},
    }
    issues = {(i.path, i.code) for i in validate_definition(body)}
    assert ("/steps/0/input/bad/$secret", "secret.invalid_name") in issues
    assert ("/steps/1/values/x", "secret.not_allowed") in issues
    assert ("/output/y", "secret.not_allowed") in issues
    assert not any(p == "/steps/0/input/k" for p, _ in issues)
    refs = secret_references(body)
    assert refs == [("/steps/0/input/k", "api-key")]
    warnings = unknown_secret_issues(refs, set())
    assert [(w.path, w.code, w.severity) for w in warnings] == [
        ("/steps/0/input/k", "secret.unknown", "warning")
    ]
    assert unknown_secret_issues(refs, {"api-key"}) == []


def test_cli_generates_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    from launcher.cli import main

    assert main(["secrets", "generate-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(parse_keys(key)) == 1 and key != DEV_SECRETS_KEY
