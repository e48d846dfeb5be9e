"""Named-schema references: pinned as embedded resources that any validator resolves,
idempotently and transitively; unknown ones reported with their paths."""

from __future__ import annotations

from typing import Any

import pytest

from tempoflow.definition import validate_definition
from tempoflow.definition.named_refs import definition_refs, pin_definition
from tempoflow.jsonschema_safe import safe_validator, unsafe_parts
from tempoflow.named_schemas import closure, is_ref, pin, unresolved

ORDER = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"$ref": "#/$defs/Id"}, "line": {"$ref": "schema:payload.Line.v1"}},
    "$defs": {"Id": {"type": "string"}},
}
LINE = {"type": "object", "required": ["sku"]}
NAMED = {"payload.Order.v1": ORDER, "payload.Line.v1": LINE}


def _messages(schema: dict[str, Any], instance: Any) -> list[str]:
    return sorted(e.message for e in safe_validator(schema).iter_errors(instance))


@pytest.mark.parametrize(
    ("root", "wrap"),
    [
        ({"properties": {"o": {"$ref": "schema:payload.Order.v1"}}}, True),
        ({"$ref": "schema:payload.Order.v1"}, False),
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "$ref": "schema:payload.Order.v1",
            },
            False,
        ),
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "properties": {"o": {"$ref": "schema:payload.Order.v1"}},
            },
            True,
        ),
    ],
)
def test_pinned_schema_resolves_inside_the_document(root: dict[str, Any], wrap: bool) -> None:
    pinned = pin(root, NAMED)
    assert unresolved(pinned) == []
    assert unsafe_parts(pinned) == []
    assert pin(pinned, NAMED) == pinned  # idempotent
    assert pin(pinned, {}) == pinned  # needs the registry no more

    def data(value: Any) -> Any:
        return {"o": value} if wrap else value

    assert _messages(pinned, data({"id": "1", "line": {"sku": "x"}})) == []
    assert _messages(pinned, data({"id": 1, "line": {}})) == [
        "'sku' is a required property",
        "1 is not of type 'string'",
    ]


def test_unknown_refs_stay_and_are_listed() -> None:
    schema = {"items": [{"$ref": "schema:a.v1#/properties/x"}, {"$ref": "schema:payload.Line.v1"}]}
    pinned = pin(schema, NAMED)
    assert unresolved(pinned, "/inputSchema") == [("/inputSchema/items/0/$ref", "a.v1")]
    assert closure(["payload.Order.v1"], NAMED) == NAMED
    assert unsafe_parts({"$ref": "https://example.com/x.json"}) != []  # still refused


def test_refs() -> None:
    assert is_ref("payload.Order.v1") and is_ref("order")
    for bad in ("", "1abc", "a..b", "a.b.json", "a/b", "a b", "x" * 201):
        assert not is_ref(bad), bad


def test_definition_refs_are_pinned_and_validated() -> None:
    body = {
        "inputSchema": {"properties": {"o": {"$ref": "schema:payload.Order.v1"}}},
        "steps": [
            {"id": "t", "type": "human.task", "title": "t", "form": {"$ref": "schema:form.v1"}}
        ],
    }
    assert definition_refs(body) == [
        ("/inputSchema/properties/o/$ref", "payload.Order.v1"),
        ("/steps/0/form/$ref", "form.v1"),
    ]
    errors = {(i.path, i.code) for i in validate_definition(body)}
    assert errors == {
        ("/inputSchema/properties/o/$ref", "schema_ref.unknown"),
        ("/steps/0/form/$ref", "schema_ref.unknown"),
    }
    offline = validate_definition(body, schema_refs="warning")
    assert {(i.code, i.severity) for i in offline} == {("schema_ref.unchecked", "warning")}
    pinned = pin_definition(body, {**NAMED, "form.v1": {"type": "object"}})
    assert validate_definition(pinned) == []
    assert body["inputSchema"] == {"properties": {"o": {"$ref": "schema:payload.Order.v1"}}}
    assert pin_definition({"steps": []}, NAMED) == {"steps": []}


def test_draft_4_cannot_refer_to_named_schemas() -> None:
    body = {
        "inputSchema": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "properties": {"o": {"$ref": "schema:payload.Order.v1"}},
        },
        "steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}],
    }
    pinned = pin_definition(body, NAMED)
    assert [(i.path, i.code) for i in validate_definition(pinned)] == [
        ("/inputSchema/$schema", "schema_ref.unsupported_dialect")
    ]
