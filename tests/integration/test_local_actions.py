"""Actions that declare themselves local run as Temporal local activities, with every
guarantee of a regular action step: the same idempotency key for every attempt, the
invocation and each attempt recorded in the projection, retries and timeouts from the
step's policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from launcher.rebuild import rebuild
from tests.integration.conftest import Stack, until
from tests.integration.test_rebuild import TABLES, _same, _snapshot


async def history_kinds(stack: Stack, workflow_id: str) -> dict[str, list[str]]:
    """Activity types scheduled as regular activities, and the markers recorded."""
    scheduled, markers = [], []
    async for event in stack.client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.HasField("marker_recorded_event_attributes"):
            markers.append(event.marker_recorded_event_attributes.marker_name)
    return {"scheduled": scheduled, "markers": markers}


async def invocations(stack: Stack, run_id: str) -> dict[str, dict[str, Any]]:
    r = await stack.http.get(f"/v1/runs/{run_id}/invocations", headers=stack.auth())
    assert r.status_code == 200, r.text
    return {item["stepPath"]: item for item in r.json()["items"]}


async def test_local_actions_run_locally_and_are_recorded(stack: Stack) -> None:
    definition = {
        "steps": [
            {"id": "noop", "type": "action.call", "action": "core.noop", "input": {"a": 1}},
            {
                "id": "flaky",
                "type": "action.call",
                "action": "test.localflaky",
                "input": {"failures": 2},
                "retry": {"initialInterval": "PT0.05S", "maxAttempts": 5},
                "output": "flaky",
            },
            {"id": "log", "type": "action.call", "action": "core.log", "input": {"message": "x"}},
            # A heartbeat timeout needs a regular activity (a local one has no heartbeat).
            {
                "id": "beat",
                "type": "action.call",
                "action": "core.noop",
                "timeouts": {"heartbeat": "PT5S"},
            },
            {"id": "echo", "type": "action.call", "action": "test.echo", "input": {"b": 2}},
        ]
    }
    r0 = await stack.http.put(
        "/v1/definitions/local",
        headers=stack.auth(),
        json={"name": "local", "definition": definition},
    )
    assert r0.status_code in (200, 201), r0.text
    r = await stack.http.post("/v1/definitions/local/publish", headers=stack.auth())
    assert r.status_code == 201, r.text
    # Which actions are local is pinned with the version.
    pinned = r.json()["actionDefaults"]
    assert pinned["core.noop"] == {"local": True} and pinned["core.log"] == {"local": True}
    assert pinned["test.localflaky"] == {"local": True} and "test.echo" not in pinned

    run = await stack.start("local")
    result = await stack.result(run)
    assert result["output"]["flaky"]["succeededOnAttempt"] == 3
    # Every attempt saw the same idempotency key, the step's.
    keys = stack.effects.keys[(run["id"], "flaky")]
    assert len(keys) == 1 and result["output"]["flaky"]["key"] in keys
    assert stack.effects.calls[(run["id"], "flaky")] == 3

    kinds = await history_kinds(stack, run["workflowId"])
    actions = [name for name in kinds["scheduled"] if not name.startswith("tempoflow.")]
    assert actions == ["core.noop", "test.echo"]  # only the heartbeat step and test.echo
    assert kinds["markers"].count("core_local_activity") >= 3

    # The projection holds the invocations and every attempt, as for regular activities.
    recorded = await invocations(stack, run["id"])
    flaky = recorded["/steps/1"]
    assert flaky["action"] == "test.localflaky" and flaky["status"] == "SUCCEEDED"
    assert flaky["attempts"] == 3 and flaky["idempotencyKey"] in keys
    assert [(a["attempt"], a["status"]) for a in flaky["attemptLog"]] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "SUCCEEDED"),
    ]
    assert recorded["/steps/0"]["status"] == "SUCCEEDED"
    assert recorded["/steps/0"]["output"] == {"a": 1}
    assert recorded["/steps/2"]["action"] == "core.log"
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    assert {s["status"] for s in steps.values()} == {"SUCCEEDED"}
    assert steps["flaky"]["attempt"] == 3
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"
    await stack.record_history(run, "local_actions")


async def test_a_local_action_times_out_and_retries(stack: Stack) -> None:
    """The step's startToClose bounds each local attempt; the retry policy applies."""
    await stack.publish(
        "local-timeout",
        {
            "steps": [
                {
                    "id": "slow",
                    "type": "action.call",
                    "action": "test.localslow",
                    "input": {"seconds": 5},
                    "timeouts": {"startToClose": "PT1S"},
                    "retry": {"initialInterval": "PT0.1S", "maxAttempts": 3},
                    "output": "slow",
                }
            ]
        },
    )
    run = await stack.start("local-timeout")
    result = await stack.result(run)
    assert result["output"]["slow"] == {"calls": 2}
    recorded = (await invocations(stack, run["id"]))["/steps/0"]
    assert recorded["status"] == "SUCCEEDED" and recorded["attempts"] == 2
    assert [a["attempt"] for a in recorded["attemptLog"]] == [1, 2]
    assert recorded["attemptLog"][0]["status"] in ("CANCELED", "FAILED")
    kinds = await history_kinds(stack, run["workflowId"])
    assert "test.localslow" not in kinds["scheduled"]


async def test_a_local_action_out_of_attempts_fails_the_step_with_a_timeout(
    stack: Stack,
) -> None:
    await stack.publish(
        "local-timeout-once",
        {
            "steps": [
                {
                    "id": "slow",
                    "type": "action.call",
                    "action": "test.localslow",
                    "input": {"seconds": 5},
                    "timeouts": {"startToClose": "PT1S"},
                    "retry": {"maxAttempts": 1},
                }
            ]
        },
    )
    run = await stack.start("local-timeout-once")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "TimeoutError"
    assert view["error"]["stepPath"] == "/steps/0"
    assert stack.effects.calls[(run["id"], "slow")] == 1


async def test_a_local_action_out_of_retries_fails_with_its_error(stack: Stack) -> None:
    await stack.publish(
        "local-fails",
        {
            "steps": [
                {
                    "id": "flaky",
                    "type": "action.call",
                    "action": "test.localflaky",
                    "input": {"failures": 5},
                    "retry": {"initialInterval": "PT0.05S", "maxAttempts": 2},
                }
            ]
        },
    )
    run = await stack.start("local-fails")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED" and view["error"]["type"] == "Transient"
    assert stack.effects.calls[(run["id"], "flaky")] == 2
    recorded = (await invocations(stack, run["id"]))["/steps/0"]
    assert recorded["status"] == "FAILED" and recorded["attempts"] == 2


async def test_cancelling_a_run_cancels_its_local_action(stack: Stack) -> None:
    await stack.publish(
        "local-cancel",
        {
            "steps": [
                {
                    "id": "slow",
                    "type": "action.call",
                    "action": "test.localslow",
                    "input": {"seconds": 30},
                    "timeouts": {"startToClose": "PT60S"},
                },
                {"id": "after", "type": "action.call", "action": "test.mark"},
            ]
        },
    )
    run = await stack.start("local-cancel")

    async def running() -> bool:
        return stack.effects.calls[(run["id"], "slow")] == 1

    await until(running)
    handle = stack.client.get_workflow_handle(run["workflowId"])
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 20)  # not after the 30 s sleep
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert stack.effects.calls[(run["id"], "after")] == 0

    async def projected() -> bool:
        return (await stack.run_view(run["id"]))["status"] == "CANCELED"

    await until(projected)
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["slow"] == "CANCELED"


async def test_local_steps_are_rebuilt_from_history(stack: Stack) -> None:
    """A local action's input is not in history (its marker holds the result): the
    rebuild takes the input from the replay and the outcome from the marker."""
    await stack.publish(
        "local-rebuild",
        {
            "steps": [
                {"id": "noop", "type": "action.call", "action": "core.noop", "input": {"a": 1}},
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "flaky",
                            "type": "action.call",
                            "action": "test.localflaky",
                            "input": {"failures": 5},
                            "retry": {"initialInterval": "PT0.05S", "maxAttempts": 2},
                        }
                    ],
                    "catch": [{"id": "caught", "type": "state.set", "values": {"c": True}}],
                },
            ]
        },
    )
    run = await stack.start("local-rebuild")
    assert (await stack.result(run))["output"]["c"] is True

    async def settled() -> bool:
        return (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"

    await until(settled)
    await asyncio.sleep(0.5)
    before = await _snapshot(stack, [run["id"]])
    assert len(before["action_invocations"]) == 2
    async with stack.sessions.begin() as session:
        for table in (*TABLES, "action_attempts"):
            await session.execute(
                text(f"DELETE FROM {table} WHERE run_id = ANY(:ids)"), {"ids": [run["id"]]}
            )
    summary = await rebuild(stack.client, stack.sessions, run_id=run["id"], tenant=stack.tenant)
    assert summary.failures == [] and summary.runs == 1
    after = await _snapshot(stack, [run["id"]])
    for table, rows in before.items():
        assert rows.keys() == after[table].keys(), table
        for key, row in rows.items():
            differs = {
                column: (value, after[table][key][column])
                for column, value in row.items()
                if not _same(value, after[table][key][column])
            }
            assert differs == {}, (table, key)
    statuses = {row["action"]: row["status"] for row in after["action_invocations"].values()}
    assert statuses == {"core.noop": "SUCCEEDED", "test.localflaky": "FAILED"}
