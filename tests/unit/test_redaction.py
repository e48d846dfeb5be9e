"""Redaction pointers: matching (with wildcards), masking, roots per record kind."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tempoflow.definition import validate_definition
from tempoflow.redaction import REDACTED, Redaction, is_pointer, mask, tokens

ORDER = {
    "card": "4111",
    "customer": {"name": "Ada", "ssn": "123"},
    "items": [{"pan": "1", "qty": 2}, {"pan": "2", "qty": 3}],
}


def test_mask_replaces_matched_locations_and_leaves_the_original() -> None:
    before = copy.deepcopy(ORDER)
    out = mask(ORDER, [("card",), ("items", "*", "pan"), ("customer", "ssn")])
    assert out == {
        "card": REDACTED,
        "customer": {"name": "Ada", "ssn": REDACTED},
        "items": [{"pan": REDACTED, "qty": 2}, {"pan": REDACTED, "qty": 3}],
    }
    assert ORDER == before


def test_wildcard_matches_object_keys_and_indexes() -> None:
    assert mask({"a": {"x": 1, "y": 2}}, [("a", "*")]) == {"a": {"x": REDACTED, "y": REDACTED}}
    assert mask([[1, 2], [3]], [("1", "0")]) == [[1, 2], [REDACTED]]


def test_missing_paths_change_nothing_and_unchanged_values_are_shared() -> None:
    assert mask(ORDER, [("nope",), ("card", "deeper"), ("items", "9", "pan")]) is ORDER
    out = mask(ORDER, [("card",)])
    assert out["customer"] is ORDER["customer"]


def test_escaped_tokens() -> None:
    assert tokens("/payload/a~1b/c~0d") == ("payload", "a/b", "c~d")
    assert mask({"a/b": 1}, [tokens("/a~1b")]) == {"a/b": REDACTED}


@pytest.mark.parametrize(
    ("pointer", "valid"),
    [
        ("/payload/card", True),
        ("/vars/customer/ssn", True),
        ("/input/items/*/pan", True),
        ("/output", True),
        ("payload/card", False),
        ("/secrets/x", False),
        ("/payload/a~2", False),
        ("", False),
    ],
)
def test_pointer_syntax(pointer: str, valid: bool) -> None:
    assert is_pointer(pointer) is valid


def test_roots_per_record_kind() -> None:
    r = Redaction(
        ["/payload/card", "/vars/customer/ssn", "/input/items/*/pan", "/output/token"],
        output_is_vars=True,
    )
    assert r.payload(ORDER)["card"] == REDACTED
    assert r.payload(ORDER)["items"] == ORDER["items"]  # /input is not /payload
    assert r.step_input(ORDER)["items"][1]["pan"] == REDACTED
    assert r.step_input(ORDER)["card"] == "4111"
    # A step assigning vars.customer: the rest of the pointer applies to its output.
    assert r.step_output({"name": "Ada", "ssn": "1"}, target="customer") == {
        "name": "Ada",
        "ssn": REDACTED,
    }
    # Dot path and JSON pointer targets; a pointer above the target masks it all.
    assert r.step_output({"ssn": "1"}, target="/customer") == {"ssn": REDACTED}
    assert r.step_output("123", target="customer.ssn") == REDACTED
    assert r.step_output({"ssn": "1"}, target="other") == {"ssn": "1"}
    # Steps that set several variables record an object keyed by target.
    assert r.step_output({"customer": {"ssn": "1"}, "n": 1}, keyed=True) == {
        "customer": {"ssn": REDACTED},
        "n": 1,
    }
    # /output applies to every step's output and to the run's.
    assert r.step_output({"token": "t"}) == {"token": REDACTED}
    # The run's output is its vars when the definition has no output mapping.
    assert r.run_output({"customer": {"ssn": "1"}, "token": "t"}) == {
        "customer": {"ssn": REDACTED},
        "token": REDACTED,
    }
    assert Redaction(["/vars/customer/ssn"]).run_output({"customer": {"ssn": "1"}}) == {
        "customer": {"ssn": "1"}
    }
    # An event taken by a waiting step: /payload pointers apply to its payload.
    event = {"id": "e1", "payload": {"card": "4111", "ok": True}}
    assert r.step_output(event, event=True) == {
        "id": "e1",
        "payload": {"card": REDACTED, "ok": True},
    }


def test_empty_redaction_is_falsy_and_returns_values_as_they_are() -> None:
    r = Redaction.of_definition({"steps": []})
    assert not r
    assert r.payload(ORDER) is ORDER
    assert r.step_output(ORDER, target="x") is ORDER


def test_publish_validates_pointers_with_their_paths() -> None:
    body = {
        "redact": ["/payload/card", "payload/nope", "/secret/x"],
        "steps": [{"id": "a", "type": "core.noop"}],
    }
    body["steps"] = [{"id": "a", "type": "action.call", "action": "core.noop"}]
    issues = [i for i in validate_definition(body) if i.path.startswith("/redact")]
    assert [i.path for i in issues] == ["/redact/1", "/redact/2"]
    assert all(i.code == "schema.string_pattern_mismatch" for i in issues)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_a_full_wildcard_masks_every_leaf_at_that_depth(value: object) -> None:
    out = mask(value, [("*",)])
    if isinstance(value, dict):
        assert set(out) == set(value)  # type: ignore[arg-type]
        assert all(v == (REDACTED if value[k] is not None else None) for k, v in out.items())  # type: ignore[index,union-attr]
    elif isinstance(value, list):
        assert len(out) == len(value)  # type: ignore[arg-type]
    else:
        assert out == value
