"""Delayed starts on the real servers: ``startAt`` holds a run in Temporal (start delay),
SCHEDULED meanwhile, cancellable before it begins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from temporalio.client import WorkflowExecutionStatus

from projections.models import RunRow
from tests.integration.conftest import Stack, until

DEFINITION = {
    "steps": [{"id": "greet", "type": "transform.assign", "assign": {"greeting": "'hi'"}}]
}


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def listed(stack: Stack, status: str) -> list[str]:
    r = await stack.http.get("/v1/runs", params={"status": status}, headers=stack.auth())
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def test_a_delayed_run_is_scheduled_then_runs_after_start_at(stack: Stack) -> None:
    await stack.publish("later", DEFINITION)
    start_at = at(3)
    run = await stack.start("later", {"n": 1}, startAt=start_at)
    assert run["status"] == "SCHEDULED"
    due = datetime.fromisoformat(start_at)
    assert datetime.fromisoformat(run["startAt"]) == due
    view = await stack.run_view(run["id"])
    assert view["status"] == "SCHEDULED" and view["source"] == "projection"
    assert datetime.fromisoformat(view["startAt"]) == due
    assert run["id"] in await listed(stack, "SCHEDULED")
    assert run["id"] not in await listed(stack, "RUNNING")
    # Temporal holds it: no step before startAt.
    assert await stack.steps(run["id"]) == []
    await asyncio.wait_for(stack.result(run), 30)

    async def succeeded() -> dict[str, Any] | None:
        view = await stack.run_view(run["id"])
        return view if view["status"] == "SUCCEEDED" else None

    view = await until(succeeded)
    assert view["output"]["greeting"] == "hi"
    assert datetime.fromisoformat(view["startAt"]) == due
    assert datetime.fromisoformat(view["startedAt"]) >= due  # the real start
    [step] = await stack.steps(run["id"])
    assert datetime.fromisoformat(step["startedAt"]) >= due
    assert run["id"] not in await listed(stack, "SCHEDULED")


async def test_a_scheduled_run_not_yet_projected_is_scheduled_from_temporal(
    stack: Stack,
) -> None:
    """Temporal is the authority: a delayed run without a projection row (the API died
    after starting it) still reads SCHEDULED, with its startAt."""
    await stack.publish("later", DEFINITION)
    run = await stack.start("later", startAt=at(60))
    async with stack.sessions() as session:
        await session.execute(delete(RunRow).where(RunRow.run_id == run["id"]))
        await session.commit()
    view = await stack.run_view(run["id"])
    assert (view["status"], view["source"]) == ("SCHEDULED", "temporal")
    # Temporal's execution time: its own start time plus the delay (a few ms apart).
    drift = datetime.fromisoformat(view["startAt"]) - datetime.fromisoformat(run["startAt"])
    assert abs(drift) < timedelta(seconds=1)
    await stack.client.get_workflow_handle(run["workflowId"]).terminate(reason="test cleanup")


async def test_cancel_before_it_begins_ends_it_canceled_and_it_never_runs(stack: Stack) -> None:
    await stack.publish("later", DEFINITION)
    run = await stack.start("later", startAt=at(3))
    r = await stack.http.post(f"/v1/runs/{run['id']}/cancel", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELED" and r.json()["action"] == "canceled_before_start"
    view = await stack.run_view(run["id"])
    assert view["status"] == "CANCELED" and view["closedAt"] is not None
    assert "canceled before it began" in view["error"]["message"]
    assert run["id"] in await listed(stack, "CANCELED")
    desc = await stack.client.get_workflow_handle(run["workflowId"]).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED
    await asyncio.sleep(4)  # past startAt: it never began
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    kinds = {e.WhichOneof("attributes") for e in history.events}
    assert "workflow_task_started_event_attributes" not in kinds
    assert await stack.steps(run["id"]) == []
    assert (await stack.run_view(run["id"]))["status"] == "CANCELED"
    # Cancelling again: it has ended, CANCELED.
    r = await stack.http.post(f"/v1/runs/{run['id']}/cancel", headers=stack.auth("operator"))
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["runStatus"]) == ("cancel_failed", "CANCELED")


# Offsets, not times, in the ids: pytest-xdist workers must collect the same tests.
@pytest.mark.parametrize(
    ("offset", "message"),
    [(-5, "not in the future"), (366 * 86400, "days ahead")],
)
async def test_start_at_out_of_bounds_is_422(stack: Stack, offset: int, message: str) -> None:
    start_at = at(offset)
    await stack.publish("later", DEFINITION)
    r = await stack.http.post(
        "/v1/runs",
        headers=stack.auth(),
        json={"definition": "later", "input": {}, "startAt": start_at},
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "start_at_invalid" and message in problem["detail"]
    assert [e["path"] for e in problem["errors"]] == ["/startAt"]


async def test_start_at_without_an_offset_is_422(stack: Stack) -> None:
    await stack.publish("later", DEFINITION)
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    r = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={"definition": "later", "startAt": naive}
    )
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json()["errors"]] == ["/startAt"]


async def test_idempotency_keys_work_with_start_at(stack: Stack) -> None:
    await stack.publish("later", DEFINITION)
    start_at = at(60)
    body = {"definition": "later", "input": {}, "startAt": start_at, "idempotencyKey": "k-1"}
    first = await stack.http.post("/v1/runs", headers=stack.auth(), json=body)
    assert first.status_code == 201, first.text
    again = await stack.http.post("/v1/runs", headers=stack.auth(), json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "SCHEDULED"
    other = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={**body, "startAt": at(120)}
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    r = await stack.http.post(
        f"/v1/runs/{first.json()['id']}/cancel", headers=stack.auth("operator")
    )
    assert r.status_code == 200, r.text


async def test_bulk_cancel_ends_scheduled_runs_before_they_begin(stack: Stack) -> None:
    """A Temporal cancel would start a delayed run at once; the bulk cancel ends the
    SCHEDULED ones unrun, like a single cancel."""
    await stack.publish("later", DEFINITION)
    runs = [await stack.start("later", {"i": i}, startAt=at(3)) for i in range(2)]
    r = await stack.http.post(
        "/v1/runs:cancel",
        headers=stack.auth("operator"),
        json={"filter": {"definition": "later", "status": "SCHEDULED"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["matched"] == 2 and r.json()["done"] == 2, r.text
    await asyncio.sleep(4)  # past startAt
    for run in runs:
        view = await stack.run_view(run["id"])
        assert view["status"] == "CANCELED"
        assert await stack.steps(run["id"]) == []
        history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
        kinds = {e.WhichOneof("attributes") for e in history.events}
        assert "workflow_task_started_event_attributes" not in kinds
