"""The definition language's JSON Schema: generated from the models, checked in current,
accepting what the models accept; the node-type registry."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tempoflow.definition import NODE_TYPES, Definition, validate_definition
from tempoflow.definition.schema_export import (
    CHECKED_IN,
    REGENERATE,
    definition_schema,
    definition_schema_text,
    main,
    node_types,
)

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_schema_is_current() -> None:
    current = (REPO / CHECKED_IN).read_text(encoding="utf-8")
    assert current == definition_schema_text(), (
        f"{CHECKED_IN} is stale: run `{REGENERATE}` "
        "(python -m tempoflow.definition.schema_export) and commit it"
    )


def test_check_mode_names_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "definition.json"
    assert main([str(target), "--check"]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main([str(target)]) == 0
    assert main([str(target), "--check"]) == 0
    target.write_text(target.read_text().replace('"steps"', '"stepz"'))
    assert main([str(target), "--check"]) == 1


def _examples() -> list[Path]:
    return [
        p
        for p in sorted((REPO / "examples").glob("*.json"))
        if "steps" in json.loads(p.read_text())
    ]


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    schema = definition_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    body = {"$schema": "../schemas/definition.json", **json.loads(path.read_text())}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(body)) == []
    assert Definition.model_validate(body).schema_uri == "../schemas/definition.json"


@pytest.mark.parametrize(
    "body",
    [
        {"steps": []},
        {"steps": [{"id": "a", "type": "state.sett"}]},
        {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}, "extra": 1}]},
        {"steps": [{"id": "a", "type": "control.if", "condition": "true", "then": [{"id": 3}]}]},
        {"steps": [{"id": "a", "type": "action.call"}]},
        {"steps": [{"id": "1bad", "type": "delay", "duration": "PT1S"}]},
    ],
)
def test_schema_refuses_what_the_model_refuses(body: dict) -> None:  # type: ignore[type-arg]
    assert not jsonschema.Draft202012Validator(definition_schema()).is_valid(body)
    assert any(i.severity == "error" for i in validate_definition(body))


def test_node_types_cover_the_language() -> None:
    items = node_types()
    assert [n["type"] for n in items] == sorted(NODE_TYPES)
    by_type = {n["type"]: n for n in items}
    assert by_type["transform.assign"]["fields"] == {"assign": "jsonata"}
    assert by_type["human.task"]["fields"]["form"] == "schema"
    for node in items:
        assert node["description"], node["type"]
        schema = node["configSchema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"]["const"] == node["type"]
    delay = jsonschema.Draft202012Validator(by_type["delay"]["configSchema"])
    assert delay.is_valid({"id": "d", "type": "delay", "duration": "PT5M"})
    assert not delay.is_valid({"id": "d", "type": "delay", "seconds": 5})


def test_attribute_docstrings_reach_editors() -> None:
    call = definition_schema()["$defs"]["ActionCall"]["properties"]
    assert "tryCancel" in call["cancellation"]["description"]
