"""Publish-time validation: every error at once, each with a JSON pointer."""

from __future__ import annotations

from datetime import timedelta

from tempoflow.definition import (
    ActionCall,
    ControlIf,
    content_hash,
    parse_definition,
    validate_definition,
    walk_steps,
)

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
        ("/steps/0/then/1/values/bad-target/[key]", "schema.string_pattern_mismatch"),
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
        ("/steps/0/values/x", "expression.invalid"),
        ("/steps/1/id", "step.duplicate_id"),
        ("/steps/1/action", "action.unknown"),
        ("/steps/1/input/k/0", "expression.invalid"),
        ("/steps/2/output", "expression.invalid"),
        ("/output", "expression.invalid"),
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
