"""Inbound webhook signatures (tempoflow.hooks) and the webhook trigger's definition."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from tempoflow import hooks
from tempoflow.definition import validate_definition

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1wYXN0LWtleQ=="
OTHER = "whsec_" + "b3RoZXItc2VjcmV0LW5vdC1vdXJz"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BODY = b'{"action":"opened","number":7}'
TOLERANCE = timedelta(minutes=5)


def standard_headers(
    body: bytes = BODY, secret: str = SECRET, at: datetime = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def github_headers(body: bytes = BODY, secret: str = "gh-secret") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}", "x-github-delivery": "d-1"}


def standard(body: bytes, headers: dict[str, str], secrets: list[str]) -> str:
    return hooks.verify("standard", body, headers, secrets, TOLERANCE, NOW)


def github(body: bytes, headers: dict[str, str], secrets: list[str]) -> str:
    return hooks.verify("github", body, headers, secrets, TOLERANCE, NOW)


# -- Standard Webhooks --------------------------------------------------------------------
def test_standard_genuine_call_returns_its_id() -> None:
    assert standard(BODY, standard_headers(), [SECRET]) == "msg_1"


def test_standard_accepts_the_library_verifier_s_own_signature() -> None:
    """What we accept is what the reference implementation accepts (at the current time)."""
    now = datetime.now(UTC)
    headers = standard_headers(at=now)
    Webhook(SECRET).verify(BODY, headers)  # the reference accepts it
    assert hooks.verify("standard", BODY, headers, [SECRET], TOLERANCE, now) == "msg_1"


def test_standard_tampered_body_is_refused() -> None:
    with pytest.raises(hooks.SignatureInvalid, match="no signature matches"):
        standard(BODY.replace(b"7", b"8"), standard_headers(), [SECRET])


def test_standard_wrong_secret_is_refused() -> None:
    with pytest.raises(hooks.SignatureInvalid, match="no signature matches"):
        standard(BODY, standard_headers(secret=OTHER), [SECRET])


def test_standard_tampered_id_is_refused() -> None:
    headers = standard_headers() | {"webhook-id": "msg_2"}
    with pytest.raises(hooks.SignatureInvalid, match="no signature matches"):
        standard(BODY, headers, [SECRET])


@pytest.mark.parametrize("offset", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_standard_timestamp_six_minutes_off_is_refused(offset: timedelta) -> None:
    """Correctly signed, but sent six minutes before (or after) our clock."""
    headers = standard_headers(at=NOW + offset)
    with pytest.raises(hooks.SignatureInvalid, match="tolerance"):
        standard(BODY, headers, [SECRET])


def test_standard_tolerance_is_the_trigger_s() -> None:
    headers = standard_headers(at=NOW - timedelta(minutes=6))
    assert hooks.verify("standard", BODY, headers, [SECRET], timedelta(minutes=10), NOW)
    headers = standard_headers(at=NOW - timedelta(seconds=90))
    with pytest.raises(hooks.SignatureInvalid):
        hooks.verify("standard", BODY, headers, [SECRET], timedelta(minutes=1), NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header_is_refused(missing: str) -> None:
    headers = standard_headers()
    del headers[missing]
    with pytest.raises(hooks.SignatureInvalid, match="missing"):
        standard(BODY, headers, [SECRET])


@pytest.mark.parametrize(
    "signature", ["v1,not-base64!", "v2,abcd", "", "v1,", "garbage", "v1a,xyz v1"]
)
def test_standard_malformed_signature_is_refused(signature: str) -> None:
    headers = standard_headers() | {"webhook-signature": signature}
    with pytest.raises(hooks.SignatureInvalid):
        standard(BODY, headers, [SECRET])


def test_standard_malformed_timestamp_is_refused() -> None:
    for stamp in ["soon", "-1", "1e9", "12345678901234"]:
        headers = standard_headers() | {"webhook-timestamp": stamp}
        with pytest.raises(hooks.SignatureInvalid):
            standard(BODY, headers, [SECRET])


def test_standard_rotation_accepts_either_secret() -> None:
    """During rotation the trigger holds the new and the old secret: both verify."""
    assert standard(BODY, standard_headers(secret=OLD_SECRET), [SECRET, OLD_SECRET])
    assert standard(BODY, standard_headers(secret=SECRET), [SECRET, OLD_SECRET])
    with pytest.raises(hooks.SignatureInvalid):
        standard(BODY, standard_headers(secret=OLD_SECRET), [SECRET])  # rotation over


def test_standard_one_of_several_offered_signatures_may_match() -> None:
    headers = standard_headers()
    wrong = Webhook(OTHER).sign("msg_1", NOW, BODY.decode())
    headers["webhook-signature"] = f"{wrong} {headers['webhook-signature']}"
    assert standard(BODY, headers, [SECRET]) == "msg_1"


def test_standard_unusable_secret_verifies_nothing() -> None:
    with pytest.raises(hooks.SignatureInvalid):
        standard(BODY, standard_headers(), ["not base64 at all!"])
    with pytest.raises(hooks.SignatureInvalid):
        standard(BODY, standard_headers(), [])


def test_standard_non_utf8_body_is_refused() -> None:
    with pytest.raises(hooks.SignatureInvalid):
        standard(b"\xff\xfe", standard_headers(), [SECRET])


# -- GitHub ------------------------------------------------------------------------------
def test_github_genuine_call_returns_its_delivery() -> None:
    assert github(BODY, github_headers(), ["gh-secret"]) == "d-1"


def test_github_upper_case_hex_is_accepted() -> None:
    headers = github_headers()
    headers["x-hub-signature-256"] = headers["x-hub-signature-256"].upper().replace("SHA", "sha")
    assert github(BODY, headers, ["gh-secret"]) == "d-1"


def test_github_tampered_body_is_refused() -> None:
    with pytest.raises(hooks.SignatureInvalid, match="no signature matches"):
        github(BODY + b" ", github_headers(), ["gh-secret"])


def test_github_wrong_secret_is_refused() -> None:
    with pytest.raises(hooks.SignatureInvalid, match="no signature matches"):
        github(BODY, github_headers(secret="someone-else"), ["gh-secret"])


@pytest.mark.parametrize("missing", ["x-hub-signature-256", "x-github-delivery"])
def test_github_missing_header_is_refused(missing: str) -> None:
    headers = github_headers()
    del headers[missing]
    with pytest.raises(hooks.SignatureInvalid, match="missing"):
        github(BODY, headers, ["gh-secret"])


@pytest.mark.parametrize("value", ["sha1=abcd", "sha256=", "abcd", "sha256"])
def test_github_malformed_signature_is_refused(value: str) -> None:
    headers = github_headers() | {"x-hub-signature-256": value}
    with pytest.raises(hooks.SignatureInvalid):
        github(BODY, headers, ["gh-secret"])


def test_github_sha1_header_alone_is_not_enough() -> None:
    digest = hmac.new(b"gh-secret", BODY, hashlib.sha1).hexdigest()
    headers = {"x-hub-signature": f"sha1={digest}", "x-github-delivery": "d-1"}
    with pytest.raises(hooks.SignatureInvalid, match="missing"):
        github(BODY, headers, ["gh-secret"])


def test_github_rotation_accepts_either_secret() -> None:
    assert github(BODY, github_headers(secret="old"), ["new", "old"]) == "d-1"
    assert github(BODY, github_headers(secret="new"), ["new", "old"]) == "d-1"


def test_delivery_id_must_be_printable_and_short() -> None:
    for bad in ["a" * 129, "with space", "tab\t"]:
        headers = github_headers() | {"x-github-delivery": bad}
        with pytest.raises(hooks.SignatureInvalid):
            github(BODY, headers, ["gh-secret"])


# -- ids ---------------------------------------------------------------------------------
def test_hook_ids_are_random_and_the_inbox_never_shows_them() -> None:
    ids = {hooks.new_hook_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 for i in ids)
    hook_id = ids.pop()
    assert hook_id not in hooks.hook_event_name(hook_id)
    assert hook_id not in hooks.hook_event_id(hook_id, "d-1")
    assert hooks.is_hook_event(hooks.hook_event_name(hook_id))
    assert not hooks.is_hook_event("order.created")


# -- the trigger in a definition -----------------------------------------------------------
def _definition(trigger: dict) -> dict:  # type: ignore[type-arg]
    return {
        "steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "1"}}],
        "triggers": [trigger],
    }


def _codes(body: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(i.path, i.code) for i in validate_definition(body) if i.severity == "error"]


def test_webhook_trigger_is_valid() -> None:
    trigger = {
        "name": "github",
        "webhook": {
            "signature": "github",
            "secrets": [{"$secret": "hook-new"}, {"$secret": "hook-old"}],
            "tolerance": "PT10M",
            "input": "{'repo': body.repository.name, 'event': headers.`x-github-event`}",
        },
    }
    assert _codes(_definition(trigger)) == []


@pytest.mark.parametrize(
    "trigger",
    [
        {"webhook": {"secrets": [{"$secret": "s"}]}},  # no name
        {"name": "h", "webhook": {"secrets": []}},  # no secret
        {"name": "h", "webhook": {"secrets": [{"$secret": "a"}] * 3}},  # three
        {"name": "h", "webhook": {"secrets": ["plain-text-secret"]}},  # not a reference
        {"name": "h", "webhook": {"signature": "md5", "secrets": [{"$secret": "s"}]}},
        {"name": "h", "webhook": {"secrets": [{"$secret": "s"}], "tolerance": "PT2H"}},
        {"name": "h", "event": "order.created", "webhook": {"secrets": [{"$secret": "s"}]}},
        {"name": "h"},  # neither kind
    ],
)
def test_bad_webhook_triggers_are_publish_errors(trigger: dict) -> None:  # type: ignore[type-arg]
    codes = _codes(_definition(trigger))
    assert codes and all(path.startswith("/triggers/0") for path, _ in codes), codes


def test_webhook_input_sees_only_body_and_headers() -> None:
    trigger = {"name": "h", "webhook": {"secrets": [{"$secret": "s"}], "input": "input.x"}}
    assert [p for p, _ in _codes(_definition(trigger))] == ["/triggers/0/webhook/input"]


def test_trigger_names_are_unique() -> None:
    hook = {"secrets": [{"$secret": "s"}]}
    body = _definition({"name": "h", "webhook": hook})
    body["triggers"].append({"name": "h", "webhook": hook})
    assert _codes(body) == [("/triggers/1/name", "trigger.duplicate_name")]


def test_unknown_webhook_secrets_are_publish_warnings() -> None:
    from tempoflow.definition.validation import secret_references, unknown_secret_issues

    hook = {"secrets": [{"$secret": "have"}, {"$secret": "missing"}]}
    refs = secret_references(_definition({"name": "h", "webhook": hook}))
    assert refs == [
        ("/triggers/0/webhook/secrets/0", "have"),
        ("/triggers/0/webhook/secrets/1", "missing"),
    ]
    [issue] = unknown_secret_issues(refs, {"have"})
    assert issue.path == "/triggers/0/webhook/secrets/1" and issue.severity == "warning"
    assert "webhook" in issue.message
