"""Expressions inside real runs: determinism under replay, hostile input, the editor API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from launcher.worker import sandboxed_runner
from temporal_workflows.interpreter import InterpreterWorkflow
from tests.integration.conftest import Stack

HISTORIES = Path(__file__).resolve().parents[1] / "histories"

CLOCK_AND_RANDOM = {
    "steps": [
        {
            "id": "stamp",
            "type": "transform.assign",
            "assign": {
                "at": "$nowIso()",
                "id": "$uuid()",
                "r": "$random()",
                "order": "$shuffle([1, 2, 3, 4, 5])",
                "ms": "$millis()",
            },
        },
        {
            "id": "echo",
            "type": "action.call",
            "action": "core.noop",
            "input": {"id": {"$expr": "vars.id"}},
            "output": "echoed",
        },
        {"id": "again", "type": "transform.assign", "assign": {"id2": "$uuid()", "at2": "$now()"}},
    ]
}


def _replayer() -> Replayer:
    return Replayer(
        workflows=[InterpreterWorkflow],
        workflow_runner=sandboxed_runner(),
        data_converter=pydantic_data_converter,
    )


async def test_clock_and_random_replay_without_nondeterminism(stack: Stack) -> None:
    await stack.publish("clock", CLOCK_AND_RANDOM)
    run = await stack.start("clock")
    out = (await stack.result(run))["output"]
    other = (await stack.result(await stack.start("clock")))["output"]
    assert out["id"] != out["id2"] != other["id"]
    assert out["echoed"] == {"id": out["id"]}
    assert sorted(out["order"]) == [1, 2, 3, 4, 5]
    assert out["at"].endswith("Z") and out["ms"] > 1_700_000_000_000
    handle = stack.client.get_workflow_handle(run["workflowId"])
    history = await handle.fetch_history()
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    await stack.record_history(run, "clock_and_random")


async def test_hostile_expression_fails_the_run_instead_of_looping(stack: Stack) -> None:
    await stack.publish(
        "hostile",
        {
            "steps": [
                {"id": "ok", "type": "state.set", "values": {"x": 1}},
                {
                    "id": "loop",
                    "type": "transform.assign",
                    "assign": {"y": "($f := function($x){ $f($x) }; $f(1))"},
                },
            ]
        },
    )
    run = await stack.start("hostile")
    with pytest.raises(WorkflowFailureError) as failure:
        await stack.result(run)
    assert failure.value.cause.type == "ExpressionError"  # type: ignore[attr-defined]
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["stepPath"] == "/steps/1"
    assert view["error"]["details"]["code"] == "TF2001"
    assert view["error"]["details"]["path"] == "/steps/1/assign/y"
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    # One workflow task did it: no retried (failed) workflow tasks.
    failed_tasks = [
        e for e in history.events if e.HasField("workflow_task_failed_event_attributes")
    ]
    assert failed_tasks == []


async def test_publish_rejects_unknown_functions_and_roots_with_positions(stack: Stack) -> None:
    body = {
        "steps": [
            {"id": "a", "type": "transform.assign", "assign": {"x": "$sum(paylod.items)"}},
            {"id": "b", "type": "state.set", "values": {"y": {"$expr": "$eval('1')"}}},
            {"id": "c", "type": "control.if", "condition": "$isValid(payload)"},
        ]
    }
    r = await stack.http.post(
        "/v1/definitions/x/validate", headers=stack.auth(), json={"definition": body}
    )
    assert r.status_code == 422
    errors = {(e["path"], e["code"], e.get("position")) for e in r.json()["errors"]}
    assert errors == {
        ("/steps/0/assign/x", "expression.unknown_root", 11),
        ("/steps/1/values/y", "expression.function_not_allowed", 5),
        ("/steps/2/condition", "expression.unknown_function", 8),
    }


async def test_publish_warns_about_unassigned_vars(stack: Stack) -> None:
    body = {
        "steps": [
            {"id": "a", "type": "state.set", "values": {"total": {"$expr": "vars.subtotal * 2"}}},
            {"id": "b", "type": "transform.assign", "assign": {"z": "vars.total + vars.tax"}},
        ]
    }
    r = await stack.http.put(
        "/v1/definitions/w", headers=stack.auth(), json={"name": "w", "definition": body}
    )
    assert r.status_code == 201
    r = await stack.http.post("/v1/definitions/w/publish", headers=stack.auth())
    assert r.status_code == 201
    warnings = {(w["path"], w["message"]) for w in r.json()["warnings"]}
    assert warnings == {
        ("/steps/0/values/total", "vars.subtotal is read but no earlier step assigns it"),
        ("/steps/1/assign/z", "vars.tax is read but no earlier step assigns it"),
    }


async def test_evaluate_endpoint(stack: Stack) -> None:
    async def post(body: dict) -> tuple[int, dict]:
        r = await stack.http.post(
            "/v1/expressions/evaluate", headers=stack.auth("publisher"), json=body
        )
        return r.status_code, r.json()

    status, body = await post(
        {
            "expression": "$sum(payload.items.price) * 2",
            "envelope": {"payload": {"items": [{"price": 2}, {"price": 3}]}},
        }
    )
    assert (status, body) == (200, {"result": 10})
    fixed = {
        "expression": "{'at': $nowIso(), 'id': $uuid()}",
        "now": "2026-05-01T10:00:00Z",
        "seed": 3,
    }
    first, again = await post(fixed), await post(fixed)
    assert first == again and first[1]["result"]["at"] == "2026-05-01T10:00:00.000Z"
    status, body = await post({"expression": "payload.("})
    assert status == 422 and body["code"] == "expression_invalid"
    assert body["errors"][0]["code"] == "S0203" and body["errors"][0]["position"] == 9
    status, body = await post({"expression": "paylod.x"})
    assert status == 422 and body["errors"][0]["code"] == "expression.unknown_root"
    status, body = await post({"expression": "[1..10000000]"})
    assert status == 422 and body["errors"][0]["code"] == "TF2003"
    status, body = await post({"expression": "item.x", "envelope": {"item": {"x": 5}}})
    assert (status, body) == (200, {"result": 5})
    r = await stack.http.post(
        "/v1/expressions/evaluate", headers=stack.auth("ingest"), json={"expression": "1"}
    )
    assert r.status_code == 403


def test_recorded_history_file_is_json() -> None:
    for path in HISTORIES.glob("*.json"):
        assert json.loads(path.read_text())["events"]


async def test_work_inside_a_builtin_fails_the_step_catchably_without_wedging(
    stack: Stack,
) -> None:
    """A built-in doing seconds of work in one call (regex over 500,000 characters, a
    string-pattern replace) used to trip the deadlock detector on every workflow task.
    Now it ends in a catchable ExpressionError within one short workflow task."""
    hostile = {
        "match": "($s := $pad('', 500000, 'a'); $count($match($s, /a/)))",
        "replace": "($s := $pad('', 500000, 'a'); $length($replace($s, 'a', 'b')))",
    }
    steps: list[dict] = [
        {
            "id": f"guard_{name}",
            "type": "control.tryCatch",
            "catchOn": ["ExpressionError"],
            "try": [{"id": name, "type": "transform.assign", "assign": {name: expr}}],
            "catch": [
                {
                    "id": f"caught_{name}",
                    "type": "transform.assign",
                    "assign": {f"{name}_code": "error.details.code"},
                }
            ],
        }
        for name, expr in hostile.items()
    ]
    steps.append(
        {"id": "fine", "type": "transform.assign", "assign": {"n": "$count($distinct([1..40000]))"}}
    )
    await stack.publish("builtin-budget", {"steps": steps})
    run = await stack.start("builtin-budget")
    out = (await stack.result(run))["output"]
    assert out["match_code"] == "TF2001" and out["replace_code"] == "TF2001"
    assert out["n"] == 40000
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    assert not [
        e
        for e in history.events
        if e.HasField("workflow_task_failed_event_attributes")
        or e.HasField("workflow_task_timed_out_event_attributes")
    ]
    started: dict[int, float] = {}
    longest = 0.0
    for e in history.events:
        at = e.event_time.ToDatetime().timestamp()
        if e.HasField("workflow_task_started_event_attributes"):
            started[e.event_id] = at
        elif e.HasField("workflow_task_completed_event_attributes"):
            begun = started[e.workflow_task_completed_event_attributes.started_event_id]
            longest = max(longest, at - begun)
    # Temporal's deadlock detector fires at 2 s; the work is bounded by the step budget,
    # so wall time on a loaded two-core machine (tests in parallel) stays below that.
    assert longest < 1.9
    await stack.record_history(run, "metered_builtins")
