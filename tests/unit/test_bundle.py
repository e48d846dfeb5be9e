"""The bundle format: canonical JSON, its JSON Schema (the repository's copy is current and
is a real schema), parsing with every violation's path, and the dependency scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.limits import BodySizeLimit
from launcher.cli_bundle import summary_table
from tempoflow.bundle import (
    FormatVersionError,
    bundle_json_schema,
    canonical_json,
    parse_bundle,
    settings_of,
    uses,
)

ROOT = Path(__file__).resolve().parents[2]
BODY = {
    "steps": [
        {"id": "a", "type": "action.call", "action": "test.echo", "input": {}},
        {
            "id": "loop",
            "type": "control.forEach",
            "items": "payload.items",
            "steps": [
                {"id": "child", "type": "control.callWorkflow", "definition": "child"},
                {
                    "id": "w",
                    "type": "event.wait",
                    "anyOf": ["a.done", "b.done"],
                    "correlationKey": "payload.id",
                },
            ],
        },
    ],
    "inputSchema": {"$ref": "schema:payload.Order.v1"},
    "triggers": [{"event": "order.paid"}],
    "retention": {"closedRuns": "P30D"},
    "limits": {"maxConcurrentRuns": 5},
}


def bundle(**changes: Any) -> dict[str, Any]:
    workflow = {
        "key": "order",
        "name": "Order",
        "description": None,
        "paused": False,
        "draft": BODY,
        "versions": [
            {
                "version": 1,
                "name": "Order",
                "description": None,
                "definition": BODY,
                "actionDefaults": None,
            }
        ],
        "settings": settings_of(BODY),
        "triggers": BODY["triggers"],
    }
    return {
        "format": "tempoflow.bundle",
        "formatVersion": 1,
        "exportedAt": "2026-11-23T21:00:00Z",
        "workflows": [workflow],
        "eventTypes": [],
        "schemas": [],
        "dependencies": {},
        **changes,
    }


def test_canonical_json_sorts_indents_and_ends_with_a_newline() -> None:
    text = canonical_json({"b": [1, {"z": 1, "a": "é"}], "a": None})
    assert text.splitlines() == [
        "{",
        '  "a": null,',
        '  "b": [',
        "    1,",
        "    {",
        '      "a": "é",',
        '      "z": 1',
        "    }",
        "  ]",
        "}",
    ]
    assert text.endswith("}\n")
    assert canonical_json(json.loads(text)) == text


def test_the_repository_schema_is_current_and_valid() -> None:
    """``schemas/bundle.v1.json`` is what the model generates (regenerate it with
    ``python -m tempoflow.bundle > schemas/bundle.v1.json``)."""
    stored = (ROOT / "schemas" / "bundle.v1.json").read_text()
    assert stored == canonical_json(bundle_json_schema())
    schema = json.loads(stored)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(bundle())) == []
    bad = bundle(formatVersion=2)
    bad["workflows"][0]["key"] = "Bad Key"
    assert {e.json_path for e in validator.iter_errors(bad)} == {
        "$.formatVersion",
        "$.workflows[0].key",
    }


def test_parse_reports_every_violation_with_its_pointer() -> None:
    doc = bundle()
    doc["workflows"][0]["versions"].append({**doc["workflows"][0]["versions"][0], "version": 0})
    doc["workflows"].append({"key": "x"})
    doc["surprise"] = True
    parsed, errors = parse_bundle(doc)
    assert parsed is None
    assert {e.path for e in errors} == {
        "/workflows/0/versions/1/version",
        "/workflows/1/name",
        "/workflows/1/draft",
        "/surprise",
    }
    assert all(e.code.startswith("bundle.") for e in errors)


def test_a_newer_format_names_the_version_it_needs() -> None:
    with pytest.raises(FormatVersionError) as caught:
        parse_bundle(bundle(formatVersion=3, newThing=[]))
    assert caught.value.needed == 3
    _, errors = parse_bundle({**bundle(), "format": "other"})
    assert [e.path for e in errors] == ["/format"]


def test_derived_summaries_and_duplicates_are_checked() -> None:
    doc = bundle()
    doc["workflows"].append(dict(doc["workflows"][0]))
    doc["workflows"][0] = {**doc["workflows"][0], "settings": {}, "triggers": []}
    doc["workflows"][0]["versions"] = [
        {**doc["workflows"][0]["versions"][0], "version": 2},
        {**doc["workflows"][0]["versions"][0], "version": 1},
    ]
    parsed, errors = parse_bundle(doc)
    assert parsed is None  # versions out of order is a schema violation
    doc["workflows"][0]["versions"].reverse()
    parsed, errors = parse_bundle(doc)
    assert parsed is not None
    assert {(e.path, e.code) for e in errors} == {
        ("/workflows/0/settings", "bundle.derived_mismatch"),
        ("/workflows/0/triggers", "bundle.derived_mismatch"),
        ("/workflows/1/key", "bundle.duplicate"),
    }


def test_settings_are_every_non_structural_member() -> None:
    """A new top-level setting (``limits``) is exported without a list to update."""
    assert settings_of(BODY) == {
        "retention": {"closedRuns": "P30D"},
        "limits": {"maxConcurrentRuns": 5},
    }


def test_uses_finds_nested_steps_triggers_and_schema_refs() -> None:
    found = uses([BODY, {"steps": "not a list"}, None])
    assert found.actions == {"test.echo"}
    assert found.node_types == {
        "action.call",
        "control.forEach",
        "control.callWorkflow",
        "event.wait",
    }
    assert found.event_types == {"a.done", "b.done", "order.paid"}
    assert found.definitions == {"child"}
    assert found.schemas == {"payload.Order.v1"}


async def test_the_import_path_has_its_own_body_limit() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = BodySizeLimit(
        Starlette(routes=[Route("/{p:path}", echo, methods=["POST"])]),
        max_bytes=1024,
        overrides={"/v1/definitions:import": (4096, "TEMPOFLOW_MAX_BUNDLE_BYTES")},
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/v1/definitions:import", content=b"x" * 3000)).text == "3000"
        r = await c.post("/v1/definitions:import", content=b"x" * 5000)
        assert r.status_code == 413 and "TEMPOFLOW_MAX_BUNDLE_BYTES" in r.json()["hint"]
        r = await c.post("/v1/runs", content=b"x" * 3000)
        assert r.status_code == 413 and "TEMPOFLOW_MAX_REQUEST_BYTES" in r.json()["hint"]


def test_cli_summary_table() -> None:
    summary = {
        "dryRun": True,
        "force": False,
        "created": {
            "workflows": ["a"],
            "versions": [{"key": "a", "version": 3, "bundleVersion": 1}],
            "eventTypes": [],
            "schemas": [],
        },
        "updated": {"workflows": [], "versions": [], "eventTypes": ["e"], "schemas": []},
        "unchanged": {"workflows": [], "versions": [], "eventTypes": [], "schemas": ["s.v1"]},
        "warnings": [{"path": "/x", "code": "secret.unknown", "message": "m"}],
    }
    lines = summary_table(summary).splitlines()
    assert [line.split() for line in lines[:5]] == [
        ["RESULT", "KIND", "ITEM"],
        ["created", "workflows", "a"],
        ["created", "versions", "a", "v3", "(bundle", "v1)"],
        ["updated", "eventTypes", "e"],
        ["unchanged", "schemas", "s.v1"],
    ]
    assert lines[5] == "2 created, 1 updated, 1 unchanged (dry run: nothing written)"
    assert lines[6] == "warning: /x: secret.unknown: m"


def test_references_are_declared_literal_fields_of_their_node() -> None:
    from tempoflow.definition import NODE_MODELS

    declared = {(t, n) for t, m in NODE_MODELS.items() for n in m.references}
    assert ("control.callWorkflow", "definition") in declared
    for node_type, name in declared:
        assert NODE_MODELS[node_type].fields[name] == "literal"
