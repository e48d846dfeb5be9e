"""Every node type is complete: a model that declares its fields (publish validation
reads only those), an executor, a runnable docs example and a recorded history.

See the "To add a node type" steps in :mod:`tempoflow.definition.model`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from tempoflow.definition import NODE_MODELS, NODE_TYPES, parse_definition, walk_steps
from tempoflow.definition.model import COMMON_FIELDS
from tempoflow.definition.validation import validate_definition
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import RunInput
from temporal_workflows.nodes import EXECUTORS, Runtime
from tests.unit.test_nodes import ctx, step

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "definition-language.md"
BLOCK = re.compile(r"```json example\n(.*?)```", re.DOTALL)
HISTORIES = sorted((ROOT / "tests" / "histories").glob("*.json"))


def _types(steps: list[Any]) -> set[str]:
    return {step.type for _, step, _ in walk_steps(steps)}


def _docs_examples() -> dict[str, set[str]]:
    """Node type → indexes of the docs examples that use it."""
    found: dict[str, set[str]] = {}
    for index, block in enumerate(BLOCK.findall(DOC.read_text())):
        example = json.loads(block)
        bodies = [example["definition"], *example.get("children", {}).values()]
        for body in bodies:
            for node_type in _types(parse_definition(body).steps):
                found.setdefault(node_type, set()).add(str(index))
    return found


def _histories() -> dict[str, set[str]]:
    """Node type → recorded histories whose definition contains it."""
    found: dict[str, set[str]] = {}
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        start = history.events[0].workflow_execution_started_event_attributes
        inp = pydantic_data_converter.payload_converter.from_payloads(
            start.input.payloads, [RunInput]
        )[0]
        for node_type in _types(parse_definition(inp.definition).steps):
            found.setdefault(node_type, set()).add(path.stem)
    return found


DOCS = _docs_examples()
RECORDED = _histories()


def test_executors_match_node_types() -> None:
    assert set(EXECUTORS) == NODE_TYPES


@pytest.mark.parametrize("node_type", sorted(NODE_TYPES))
def test_node_type_is_complete(node_type: str) -> None:
    model = NODE_MODELS[node_type]
    assert callable(EXECUTORS.get(node_type)), f"{node_type} has no executor"
    declared = {f.alias or n for n, f in model.model_fields.items()} - COMMON_FIELDS
    assert set(model.fields) == declared, f"{node_type}: undeclared fields"
    assert DOCS.get(node_type), f"{node_type} has no example in {DOC.name}"
    assert RECORDED.get(node_type), f"{node_type} is in no recorded history"


def test_validation_reads_every_node_type_from_its_model() -> None:
    """A broken expression in the first expression field of each node type is found:
    the validator has a path into every node type (nothing per type but the model)."""
    for node_type, model in NODE_MODELS.items():
        field = next((f for f, k in model.fields.items() if k == "jsonata"), None)
        if field is None:
            continue
        step = {"id": "s", "type": node_type, field: "paylod.x"}
        paths = {i.path for i in validate_definition({"steps": [step]})}
        assert any(p.startswith(f"/steps/0/{field}") for p in paths), (node_type, paths)


def test_assigned_variables_come_from_the_model() -> None:
    body = {
        "steps": [
            {"id": "a", "type": "state.set", "values": {"x.y": 1}},
            {"id": "b", "type": "transform.assign", "assign": {"/z": "1"}},
            {"id": "c", "type": "action.call", "action": "core.noop", "output": "w"},
            {"id": "d", "type": "transform.assign", "assign": {"r": "vars.x + vars.z + vars.w"}},
        ]
    }
    assert [i for i in validate_definition(body) if i.code == "expression.unassigned_var"] == []
    body["steps"].insert(0, body["steps"].pop())
    unassigned = {i.message for i in validate_definition(body)}
    assert {m for m in unassigned if "is read but" in m} == {
        f"vars.{n} is read but no earlier step assigns it" for n in "xzw"
    }


def test_no_module_but_the_model_and_executors_names_a_node_type() -> None:
    """Per-type lists or ``isinstance`` chains elsewhere are how a node type used to be
    left unvalidated; everything reads the model instead."""
    allowed = {
        ROOT / "tempoflow" / "definition" / "model.py",
        ROOT / "temporal_workflows" / "nodes",
    }
    literal = re.compile("|".join(re.escape(f'"{t}"') for t in sorted(NODE_TYPES)))
    classes = re.compile(
        r"isinstance\([^)]*\b(" + "|".join(m.__name__ for m in NODE_MODELS.values()) + r")\b"
    )
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for package in ("app", "activities", "temporal_workflows", "tempoflow", "projections")
        for path in (ROOT / package).rglob("*.py")
        if not ({path, *path.parents} & allowed)
        for match in [*literal.finditer(path.read_text()), *classes.finditer(path.read_text())]
    ]
    assert found == []


LEAF = {"id": "leaf", "type": "state.set", "values": {"z": 1}}
# Containers, in variants that together run every block they hold.
CONTAINERS: dict[str, list[dict[str, Any]]] = {
    "control.if": [
        {"condition": "true", "then": [LEAF], "else": [LEAF]},
        {"condition": "false", "then": [LEAF], "else": [LEAF]},
    ],
    "control.switch": [
        {"cases": [{"when": "true", "steps": [LEAF]}], "default": [LEAF]},
        {"cases": [{"when": "false", "steps": [LEAF]}], "default": [LEAF]},
    ],
    "control.forEach": [{"items": "[1]", "steps": [LEAF]}],
    "control.parallel": [{"branches": {"a": [LEAF], "b": [LEAF]}}],
    "control.tryCatch": [{"try": [LEAF], "catch": [LEAF], "finally": [LEAF]}],
}


def test_every_container_is_listed() -> None:
    holders = {t for t, m in NODE_MODELS.items() if "steps" in m.fields.values()}
    assert set(CONTAINERS) == holders


@pytest.mark.parametrize("node_type", sorted(CONTAINERS))
async def test_executors_run_the_blocks_the_model_declares(node_type: str) -> None:
    """The executor's block pointers are the model's ``children()`` (which validation and
    ``walk_steps`` use): a step path in a run is always one the definition has."""
    declared: set[str] = set()
    ran: set[str] = set()

    async def run_block(steps: list[Any], base: str, scope: Any) -> None:
        ran.add(base)
        if base.endswith("/try"):
            raise StepFailure("Boom", "fails so that catch runs", None)

    for body in CONTAINERS[node_type]:
        s = step({"id": "s", "type": node_type, **body})
        declared |= {f"/steps/0/{suffix}" for suffix, _, _ in s.children()}
        await EXECUTORS[node_type](s, "/steps/0", 1, ctx(), Runtime(run_block, {}, lambda c: False))
    assert ran == declared
