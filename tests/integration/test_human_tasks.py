"""Human tasks: listed while the run waits, completed through a Temporal Update that
validates the form; the first completion wins."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from projections.group import GroupWriter
from tempoflow.records import ProjectionBatch, RunStatus
from tests.integration.conftest import Stack, until

APPROVAL = {
    "steps": [
        {
            "id": "approve",
            "type": "human.task",
            "title": {"$expr": "'Approve order ' & payload.orderId"},
            "description": "Check the amount",
            "assignee": {"$expr": "payload.manager"},
            "role": "finance",
            "form": {
                "type": "object",
                "required": ["approved"],
                "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
                "additionalProperties": False,
            },
            "output": "approval",
        },
        {"id": "done", "type": "transform.assign", "assign": {"ok": "vars.approval.data.approved"}},
    ]
}


async def open_task(stack: Stack, run_id: str) -> dict[str, Any]:
    async def listed() -> dict[str, Any] | None:
        r = await stack.http.get(f"/v1/tasks?runId={run_id}", headers=stack.auth("operator"))
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return items[0] if items else None

    return dict(await until(listed))


async def test_task_is_completed_once_with_valid_data(stack: Stack) -> None:
    await stack.publish("approval", APPROVAL)
    run = await stack.start("approval", {"orderId": "o-7", "manager": "ann"})
    task = await open_task(stack, run["id"])
    assert task["title"] == "Approve order o-7" and task["assignee"] == "ann"
    assert task["status"] == "OPEN" and task["role"] == "finance"
    assert (await stack.run_view(run["id"]))["status"] == "WAITING"
    r = await stack.http.get("/v1/tasks?status=OPEN&assignee=ann", headers=stack.auth())
    assert [t["id"] for t in r.json()["items"]] == [task["id"]]
    url = f"/v1/tasks/{task['id']}/complete"

    r = await stack.http.post(
        url, headers=stack.auth("operator"), json={"data": {"approved": "yes", "extra": 1}}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "task_data_invalid"
    assert {(e["path"], e["code"]) for e in r.json()["errors"]} == {
        ("/data", "data.additionalProperties"),
        ("/data/approved", "data.type"),
    }
    r = await stack.http.post(
        url, headers=stack.auth("operator"), json={"data": {"approved": True}, "completedBy": "ann"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED" and r.json()["completedBy"] == "ann"
    r = await stack.http.post(
        url, headers=stack.auth("operator"), json={"data": {"approved": False}}
    )
    assert r.status_code == 409 and r.json()["code"] == "task_not_open"

    result = await asyncio.wait_for(stack.result(run), 30)
    out = result["output"]
    assert out["ok"] is True
    assert out["approval"]["data"] == {"approved": True}
    assert out["approval"]["completedBy"] == "ann" and out["approval"]["taskId"] == task["id"]
    await stack.record_history(run, "human_task")
    r = await stack.http.get(f"/v1/tasks/{task['id']}", headers=stack.auth("operator"))
    view = r.json()
    assert view["status"] == "COMPLETED" and view["data"] == {"approved": True}
    assert view["completedBy"] == "ann" and view["completedAt"] is not None


async def test_concurrent_completions_one_wins(stack: Stack) -> None:
    await stack.publish("approval", APPROVAL)
    run = await stack.start("approval", {"orderId": "o-8", "manager": "bob"})
    task = await open_task(stack, run["id"])
    url = f"/v1/tasks/{task['id']}/complete"
    answers = await asyncio.gather(
        *(
            stack.http.post(
                url,
                headers=stack.auth("operator"),
                json={"data": {"approved": i % 2 == 0}, "completedBy": f"u{i}"},
            )
            for i in range(4)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409, 409, 409], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 200)
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["approval"]["completedBy"] == winner["completedBy"]


async def test_task_of_a_cancelled_run_cannot_be_completed(stack: Stack) -> None:
    await stack.publish("approval", APPROVAL)
    run = await stack.start("approval", {"orderId": "o-9", "manager": "cy"})
    task = await open_task(stack, run["id"])
    await stack.client.get_workflow_handle(run["workflowId"]).cancel()

    async def cancelled() -> bool:
        r = await stack.http.get(f"/v1/tasks/{task['id']}", headers=stack.auth())
        return bool(r.json()["status"] == "CANCELED")

    await until(cancelled)
    r = await stack.http.post(
        f"/v1/tasks/{task['id']}/complete",
        headers=stack.auth("operator"),
        json={"data": {"approved": True}},
    )
    assert r.status_code == 409 and r.json()["taskStatus"] == "CANCELED"


async def test_tasks_are_isolated_by_tenant(stack: Stack, other_tenant: dict[str, str]) -> None:
    await stack.publish("approval", APPROVAL)
    run = await stack.start("approval", {"orderId": "o-10", "manager": "dee"})
    task = await open_task(stack, run["id"])
    r = await stack.http.get(f"/v1/tasks/{task['id']}", headers=other_tenant)
    assert r.status_code == 404
    r = await stack.http.post(
        f"/v1/tasks/{task['id']}/complete", headers=other_tenant, json={"data": {"approved": True}}
    )
    assert r.status_code == 404
    r = await stack.http.get("/v1/tasks", headers=other_tenant)
    assert r.json()["items"] == []
    r = await stack.http.post(
        f"/v1/tasks/{task['id']}/complete", headers=stack.auth("ingest"), json={"data": {}}
    )
    assert r.status_code == 403
    await stack.client.get_workflow_handle(run["workflowId"]).cancel()


@pytest.fixture
def slow_closing_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Projection writes that close a run take a second: a cancellation sent right
    after a task completion always arrives while the run's last write is in flight."""
    original = GroupWriter.write

    async def slow(self: GroupWriter, batches: list[ProjectionBatch]) -> None:
        if any(b.run is not None and b.run.status in CLOSED for b in batches):
            await asyncio.sleep(1.0)
        await original(self, batches)

    monkeypatch.setattr(GroupWriter, "write", slow)


CLOSED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED}
TEMPORAL_TO_PROJECTION = {
    WorkflowExecutionStatus.COMPLETED: "SUCCEEDED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
}


async def test_cancel_racing_a_completion_leaves_a_true_projection(
    slow_closing_writes: None, stack: Stack
) -> None:
    await stack.publish("approval", APPROVAL)
    for i in range(3):
        run = await stack.start("approval", {"orderId": f"o-{i}", "manager": "ann"})
        task = await open_task(stack, run["id"])
        handle = stack.client.get_workflow_handle(run["workflowId"])

        async def cancel_meanwhile(handle: Any = handle) -> None:
            await asyncio.sleep(0.3)  # the completion's run is writing its outcome
            await handle.cancel()

        r, _ = await asyncio.gather(
            stack.http.post(
                f"/v1/tasks/{task['id']}/complete",
                headers=stack.auth("operator"),
                json={"data": {"approved": True}},
            ),
            cancel_meanwhile(),
        )
        # 503 when the cancellation made Temporal drop the completion's workflow task.
        assert r.status_code in (200, 503), r.text
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        expected = TEMPORAL_TO_PROJECTION[(await handle.describe()).status]  # type: ignore[index]

        async def closed(run_id: str = run["id"]) -> dict[str, Any] | None:
            view = await stack.run_view(run_id)
            return view if view["status"] not in ("RUNNING", "WAITING") else None

        view = await until(closed)
        assert view["status"] == expected
        r = await stack.http.get(f"/v1/tasks/{task['id']}", headers=stack.auth("operator"))
        assert r.json()["status"] != "OPEN"
