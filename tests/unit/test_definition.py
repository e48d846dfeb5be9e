"""Publish-time validation: every error at once, each with a JSON pointer."""

from __future__ import annotations

import json
import re
import typing
from datetime import timedelta
from typing import Any

import pytest

from tempoflow.definition import (
    ActionCall,
    ControlIf,
    content_hash,
    parse_definition,
    validate_definition,
    walk_steps,
)
from tempoflow.definition.model import COMMON_FIELDS, NODE_MODELS, NODE_TYPES, Step

ACTIONS = ["core.noop", "core.log"]


def issues(body: object) -> set[tuple[str, str]]:
    return {(i.path, i.code) for i in validate_definition(body, ACTIONS)}


def test_valid_definition_has_no_issues() -> None:
    body = {
        "steps": [
            {"id": "a", "type": "state.set", "values": {"x.y": {"$expr": "payload.n"}}},
            {"id": "b", "type": "transform.assign", "assign": {"z": "vars.x.y + 1"}},
            {
                "id": "c",
                "type": "control.if",
                "condition": "vars.z > 1",
                "then": [{"id": "d", "type": "action.call", "action": "core.noop"}],
                "else": [{"id": "e", "type": "control.return", "output": {"$expr": "vars"}}],
            },
        ],
        "output": {"z": {"$expr": "vars.z"}},
    }
    assert validate_definition(body, ACTIONS) == []


def test_missing_steps_and_unknown_fields() -> None:
    assert issues({}) == {("/steps", "schema.missing")}
    assert issues({"steps": [], "bogus": 1}) == {
        ("/steps", "schema.too_short"),
        ("/bogus", "schema.extra_forbidden"),
    }


def test_unknown_node_type_names_the_step() -> None:
    found = validate_definition({"steps": [{"id": "a", "type": "nope"}]}, ACTIONS)
    assert [(i.path, i.code) for i in found] == [("/steps/0", "schema.union_tag_invalid")]
    assert found[0].hint


def test_field_errors_inside_nested_branches() -> None:
    body = {
        "steps": [
            {
                "id": "c",
                "type": "control.if",
                "condition": "true",
                "then": [
                    {"id": "x", "type": "action.call", "action": "Not A Name"},
                    {"id": "y", "type": "state.set", "values": {"bad-target": 1}},
                ],
            }
        ]
    }
    assert issues(body) == {
        ("/steps/0/then/0/action", "schema.string_pattern_mismatch"),
        ("/steps/0/then/1/values/bad-target", "schema.string_pattern_mismatch"),
    }


def test_semantic_errors_all_reported() -> None:
    body = {
        "steps": [
            {"id": "a", "type": "state.set", "values": {"x": {"$expr": "1 +"}}},
            {
                "id": "a",
                "type": "action.call",
                "action": "core.nothing",
                "input": {"k": [{"$expr": "("}]},
            },
            {"id": "r", "type": "control.return", "output": {"$expr": "]"}},
        ],
        "output": {"$expr": "[["},
        "inputSchema": {"type": 5},
    }
    assert issues(body) == {
        ("/steps/0/values/x", "S0207"),
        ("/steps/1/id", "step.duplicate_id"),
        ("/steps/1/action", "action.unknown"),
        ("/steps/1/input/k/0", "S0203"),
        ("/steps/2/output", "S0211"),
        ("/output", "S0203"),
        ("/inputSchema/type", "input_schema.invalid"),
    }


def test_expression_issue_carries_position() -> None:
    body = {"steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "payload.("}}]}
    (issue,) = validate_definition(body, ACTIONS)
    assert issue.path == "/steps/0/assign/x" and issue.position == 9


def test_action_names_unchecked_without_registry() -> None:
    body = {"steps": [{"id": "a", "type": "action.call", "action": "any.thing"}]}
    assert validate_definition(body, None) == []


def test_action_defaults_and_durations() -> None:
    d = parse_definition(
        {
            "steps": [
                {
                    "id": "a",
                    "type": "action.call",
                    "action": "core.noop",
                    "timeout": "PT5S",
                    "retry": {"maxAttempts": 2, "initialInterval": "PT0.5S"},
                }
            ]
        }
    )
    step = d.steps[0]
    assert isinstance(step, ActionCall)
    assert step.timeout == timedelta(seconds=5)
    assert step.retry.maxAttempts == 2 and step.retry.initialInterval == timedelta(seconds=0.5)
    assert step.retry.backoffCoefficient == 2.0 and step.input == {}


def test_walk_steps_visits_branches_in_order() -> None:
    d = parse_definition(
        {
            "steps": [
                {
                    "id": "c",
                    "type": "control.if",
                    "condition": "true",
                    "then": [{"id": "t", "type": "state.set", "values": {"a": 1}}],
                    "else": [{"id": "e", "type": "state.set", "values": {"a": 2}}],
                },
                {"id": "z", "type": "state.set", "values": {"b": 1}},
            ]
        }
    )
    assert [(p, s.id) for p, s, _ in walk_steps(d.steps)] == [
        ("/steps/0", "c"),
        ("/steps/0/then/0", "t"),
        ("/steps/0/else/0", "e"),
        ("/steps/1", "z"),
    ]
    assert isinstance(d.steps[0], ControlIf)


def test_content_hash_ignores_key_order() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_structural_and_semantic_errors_are_reported_together() -> None:
    """An unknown field in one step no longer hides every semantic error (issue: the user
    fixed it and met a second round)."""
    body = {
        "steps": [
            {"id": "a", "type": "action.call", "action": "core.nothing"},
            {"id": "b", "type": "transform.assign", "assign": {"x": "paylod.x"}},
            {"id": "c", "type": "state.set", "values": {"y": 1}, "bogus": 1},
            {
                "id": "d",
                "type": "control.if",
                "condition": "paylod.y",
                "colour": "red",
                "then": [
                    {
                        "id": "e",
                        "type": "action.call",
                        "action": "core.other",
                        "extra": 1,
                        "input": {"v": {"$expr": "vars.("}},
                    },
                    {"id": "a", "type": "delay"},
                ],
            },
        ]
    }
    assert issues(body) == {
        ("/steps/0/action", "action.unknown"),
        ("/steps/1/assign/x", "expression.unknown_root"),
        ("/steps/2/bogus", "schema.extra_forbidden"),
        ("/steps/3/colour", "schema.extra_forbidden"),
        ("/steps/3/condition", "expression.unknown_root"),
        ("/steps/3/then/0/extra", "schema.extra_forbidden"),
        ("/steps/3/then/0/action", "action.unknown"),
        ("/steps/3/then/0/input/v", "S0203"),
        ("/steps/3/then/1", "schema.value_error"),
        ("/steps/3/then/1/id", "step.duplicate_id"),
    }


def test_every_node_model_declares_every_field() -> None:
    """Validation reads fields by their declared kind: a node type or a field it does not
    know about cannot slip through (the import fails; this says why)."""
    union = typing.get_args(typing.get_args(Step)[0])
    assert set(NODE_MODELS.values()) == set(union) and NODE_TYPES == set(NODE_MODELS)
    for model in union:
        names = {f.alias or n for n, f in model.model_fields.items()} - COMMON_FIELDS
        assert set(model.fields) == names, model.__name__
        assert set(model.scope_names) <= names


LEAF = {"id": "leaf", "type": "state.set", "values": {"z": 1}}
MINIMAL: dict[str, dict[str, Any]] = {
    "state.set": {"values": {"a": 1}},
    "transform.assign": {"assign": {"a": "1"}},
    "action.call": {"action": "core.noop"},
    "control.if": {"condition": "true"},
    "control.switch": {"cases": [{"when": "true", "steps": [LEAF]}]},
    "control.forEach": {"items": "[1]", "steps": [LEAF]},
    "control.parallel": {"branches": {"a": [LEAF], "b": [{**LEAF, "id": "leaf2"}]}},
    "control.tryCatch": {"try": [LEAF], "catch": [{**LEAF, "id": "leaf2"}]},
    "control.return": {},
    "control.callWorkflow": {"definition": "child"},
    "delay": {"until": "$nowIso()"},
    "event.wait": {"event": "e", "correlationKey": "payload.k"},
    "human.task": {"title": "t"},
}
# Where a field's value is not the place of the expression itself: the value, with "{}"
# standing for the expression (``$expr``: as an envelope).
PLACED: dict[tuple[str, str], tuple[Any, str, bool]] = {
    ("state.set", "values"): ({"a": "{}"}, "/values/a", True),
    ("transform.assign", "assign"): ({"a": "{}"}, "/assign/a", False),
    ("control.switch", "cases"): ([{"when": "{}", "steps": [LEAF]}], "/cases/0/when", False),
    ("control.parallel", "branches"): (
        {"a": [LEAF], "b": [{"id": "q", "type": "control.return", "output": "{}"}]},
        "/branches/b/0/output",
        True,
    ),
}
FIELDS = sorted((t, f, k) for t, m in NODE_MODELS.items() for f, k in m.fields.items())


def _with(node_type: str, field: str, expr: str) -> tuple[dict[str, Any], str]:
    """A definition with ``expr`` in ``field`` of a ``node_type`` step, and its pointer."""
    kind = NODE_MODELS[node_type].fields[field]
    if (node_type, field) in PLACED:
        shape, where, as_envelope = PLACED[(node_type, field)]
        placed = {"$expr": expr} if as_envelope else expr
        value = json.loads(json.dumps(shape).replace('"{}"', json.dumps(placed)))
    elif kind == "steps":
        value = [{"id": "inner", "type": "transform.assign", "assign": {"q": expr}}]
        where = f"/{field}/0/assign/q"
    else:
        value = expr if kind == "jsonata" else {"$expr": expr}
        where = f"/{field}"
    step = {"id": "s", "type": node_type, **MINIMAL[node_type], field: value}
    return {"steps": [step]}, f"/steps/0{where}"


@pytest.mark.parametrize(("node_type", "field", "kind"), FIELDS)
def test_every_node_field_reads_expressions_as_declared(
    node_type: str, field: str, kind: str
) -> None:
    """Expressions are checked wherever a field takes them; an envelope in a field that
    takes none is an error, not a literal object (``role`` used to be refused)."""
    body, where = _with(node_type, field, "paylod.x")
    found = issues(body)
    if kind in ("literal", "target", "schema", "action"):
        assert (where, "expression.not_allowed") in found
    else:
        assert (where, "expression.unknown_root") in found
        good, _ = _with(node_type, field, "payload.x")
        assert issues(good) == set(), good


def test_role_takes_a_string_or_an_expression() -> None:
    task = {"id": "t", "type": "human.task", "title": "x"}
    assert issues({"steps": [{**task, "role": {"$expr": "payload.role"}}]}) == set()
    assert issues({"steps": [{**task, "role": "finance"}]}) == set()
    assert issues({"steps": [{**task, "role": "r" * 65}]}) == {
        ("/steps/0/role", "schema.value_error")
    }


def _resolve(body: Any, pointer: str) -> Any:
    assert pointer == "" or pointer.startswith("/"), pointer
    node = body
    for token in pointer.split("/")[1:]:
        assert re.fullmatch(r"(?:[^~]|~[01])*", token), pointer  # RFC 6901 escapes
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def test_every_error_path_is_a_json_pointer_into_the_body() -> None:
    body = {
        "steps": [
            {"id": "a", "type": "state.set", "values": {"a..b": 1, "x/y~z": 2}},
            {"id": "b", "type": "transform.assign", "assign": {"/p~1q": "paylod"}},
            {
                "id": "c",
                "type": "action.call",
                "action": "core.noop",
                "input": {"k/1": {"$expr": "paylod"}, "t~": [{"$expr": "1 +"}]},
            },
            {
                "id": "d",
                "type": "human.task",
                "title": "t",
                "form": {"properties": {"a/b": {"type": 5}}},
            },
            {
                "id": "e",
                "type": "control.parallel",
                "branches": {"b/1": [LEAF], "ok": [{"id": "f", "type": "delay"}]},
            },
            {"id": "g", "type": "delay", "duration": "soon"},
            {"id": "h", "type": "control.tryCatch", "try": [], "finally": [{"id": "i"}]},
        ],
        "inputSchema": {"properties": {"~x": {"type": "nope"}}},
    }
    found = validate_definition(body, ACTIONS)
    assert len(found) >= 12
    for issue in found:
        if issue.code == "schema.missing":
            _resolve(body, issue.path.rsplit("/", 1)[0])
        else:
            _resolve(body, issue.path)
    paths = {i.path for i in found}
    assert {
        "/steps/0/values/a..b",
        "/steps/0/values/x~1y~0z",
        "/steps/2/input/k~11",
        "/steps/2/input/t~0/0",
        "/steps/3/form/properties/a~1b/type",
        "/inputSchema/properties/~0x/type",
        "/steps/4/branches/b~11",
    } <= paths


def test_schemas_that_would_fetch_or_backtrack_are_refused_at_publish() -> None:
    form = {
        "type": "object",
        "properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}, "b": {"$ref": "#/$defs/b"}},
        "patternProperties": {"(?=x)": {}},
        "$defs": {"b": {"type": "string", "pattern": "(a)\\1"}},
    }
    body = {
        "steps": [{"id": "t", "type": "human.task", "title": "t", "form": form}],
        "inputSchema": {"properties": {"x": {"$ref": "other.json#/x"}}},
    }
    assert issues(body) == {
        ("/steps/0/form/properties/a/$ref", "form.invalid"),
        ("/steps/0/form/patternProperties", "form.invalid"),
        ("/steps/0/form/$defs/b/pattern", "form.invalid"),
        ("/inputSchema/properties/x/$ref", "input_schema.invalid"),
    }
