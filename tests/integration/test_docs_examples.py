"""Every ```json example block in docs/ runs and ends as it says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

from tempoflow.definition import NODE_TYPES, parse_definition, walk_steps
from tests.integration.conftest import Stack, until

DOC = Path(__file__).resolve().parents[2] / "docs" / "definition-language.md"
BLOCK = re.compile(r"```json example\n(.*?)```", re.DOTALL)


def examples() -> list[dict[str, Any]]:
    return [json.loads(block) for block in BLOCK.findall(DOC.read_text())]


def test_every_node_type_has_an_example() -> None:
    covered = {
        step.type
        for ex in examples()
        for _, step, _ in walk_steps(parse_definition(ex["definition"]).steps)
    }
    assert covered == NODE_TYPES


async def _open_task(stack: Stack, run_id: str) -> dict[str, Any] | None:
    r = await stack.http.get(f"/v1/tasks?runId={run_id}&status=OPEN", headers=stack.auth())
    items = r.json()["items"]
    return dict(items[0]) if items else None


@pytest.mark.parametrize("index", range(len(examples())))
async def test_doc_example_runs(stack: Stack, index: int) -> None:
    example = examples()[index]
    key = f"docs-example-{index}"
    for child_key, child in example.get("children", {}).items():
        await stack.publish(child_key, child)
    await stack.publish(key, example["definition"])
    for name, body in example.get("eventTypes", {}).items():
        r = await stack.http.put(f"/v1/event-types/{name}", headers=stack.auth(), json=body)
        assert r.status_code in (200, 201), r.text
    for event in example.get("events", []):  # sent before the run: taken from the buffer
        r = await stack.http.post("/v1/events", headers=stack.auth("ingest"), json=event)
        assert r.status_code == 202, r.text
    run = await stack.start(key, example["input"])
    for completion in example.get("completeTasks", []):
        task = await until(lambda: _open_task(stack, run["id"]))
        for field, value in example.get("expectTask", {}).items():
            assert task[field] == value, field
        r = await stack.http.post(
            f"/v1/tasks/{task['id']}/complete", headers=stack.auth("operator"), json=completion
        )
        assert r.status_code == 200, r.text
    try:
        await stack.result(run)
    except WorkflowFailureError:
        pass
    await stack.record_history(run, f"docs_example_{index:02d}")
    view = await stack.run_view(run["id"])
    expect = example["expect"]
    assert view["status"] == expect["status"]
    if "output" in expect:
        assert view["output"] == expect["output"]
    for field, value in expect.get("error", {}).items():
        assert view["error"][field] == value
