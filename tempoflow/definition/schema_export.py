"""The definition language as JSON Schema, generated from the models: the whole language
(``schemas/definition.json``, served at ``GET /v1/schemas/definition.json``) and each node
type's configuration (``GET /v1/node-types``).

Regenerate the checked-in copy with ``make schemas`` (``python -m
tempoflow.definition.schema_export schemas/definition.json``); ``--check`` exits 1 when the
file differs (``tests/unit/test_schema_export.py`` does the same).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from tempoflow.definition.model import NODE_MODELS, Definition

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:tempoflow:schema:definition:v1"
CHECKED_IN = "schemas/definition.json"
REGENERATE = "make schemas"


def canonical(document: Any) -> str:
    """Sorted keys, 2-space indent, a trailing newline (stable diffs)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def _definition_schema() -> str:
    schema = Definition.model_json_schema(by_alias=True)
    schema = {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "Tempoflow workflow definition (v1)",
        "description": "A workflow definition: see docs/definition-language.md. Point an "
        'editor at this file with "$schema" to get completion and checks.',
    }
    return canonical(schema)


def definition_schema() -> dict[str, Any]:
    """The JSON Schema of a definition file (a fresh copy)."""
    result: dict[str, Any] = json.loads(_definition_schema())
    return result


def definition_schema_text() -> str:
    """:func:`definition_schema` as canonical JSON (what ``schemas/definition.json`` holds)."""
    return _definition_schema()


def _config_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A node model's schema with its own definition at the top (pydantic puts a node
    that holds steps, so refers to itself, under ``$defs`` behind a ``$ref``)."""
    ref = schema.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = {**schema["$defs"][ref.rsplit("/", 1)[-1]], "$defs": schema["$defs"]}
    return {"$schema": DIALECT, **schema}


@cache
def _node_types() -> str:
    items = []
    for node_type, model in sorted(NODE_MODELS.items()):
        items.append(
            {
                "type": node_type,
                "description": inspect.cleandoc(model.__doc__ or ""),
                "fields": dict(model.fields),
                "scopeNames": {k: sorted(v) for k, v in sorted(model.scope_names.items())},
                "configSchema": _config_schema(model.model_json_schema(by_alias=True)),
            }
        )
    return json.dumps(items)


def node_types() -> list[dict[str, Any]]:
    """Every node type: ``type``, ``description``, ``fields`` (each field's kind:
    ``jsonata``, ``template``, ``steps``, …), ``scopeNames`` and ``configSchema`` (the
    JSON Schema of a step of that type), sorted by type."""
    result: list[dict[str, Any]] = json.loads(_node_types())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tempoflow.definition.schema_export",
        description="Write the definition language's JSON Schema.",
    )
    parser.add_argument("path", nargs="?", default=CHECKED_IN)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    path = Path(args.path)
    text = definition_schema_text()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
