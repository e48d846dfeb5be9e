"""Flow control on the real servers: ``limits`` queue runs (QUEUED) in a per-definition
gate workflow and start them as slots free up, from two API processes as from one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.flow import FlowActivities
from projections.models import RunRow, StepRow
from temporal_workflows.gate import GATE_RELEASE_SIGNAL, gate_id
from tests.integration.conftest import Stack, until

SLOW = {
    "limits": {"maxConcurrentRuns": 1},
    "steps": [{"id": "work", "type": "delay", "duration": "PT2S"}],
}


async def listed(stack: Stack, status: str) -> list[str]:
    r = await stack.http.get("/v1/runs", params={"status": status}, headers=stack.auth())
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def status_of(stack: Stack, run_id: str, wanted: str) -> dict[str, Any] | None:
    view = await stack.run_view(run_id)
    return view if view["status"] == wanted else None


async def test_runs_beyond_the_limit_are_queued_and_start_in_order(stack: Stack) -> None:
    await stack.publish("one-at-a-time", SLOW)
    first = await stack.start("one-at-a-time", {"n": 1})
    await until(lambda: status_of(stack, first["id"], "WAITING"))  # in its delay
    second = await stack.start("one-at-a-time", {"n": 2})
    third = await stack.start("one-at-a-time", {"n": 3})
    # POST /v1/runs answers what a limited run is when it begins: QUEUED.
    assert first["status"] == second["status"] == third["status"] == "QUEUED"
    await until(lambda: status_of(stack, second["id"], "QUEUED"))
    await until(lambda: status_of(stack, third["id"], "QUEUED"))
    queued = await listed(stack, "QUEUED")
    assert {second["id"], third["id"]} <= set(queued) and first["id"] not in queued
    assert await stack.steps(second["id"]) == []  # nothing of it ran
    # Cancelling a queued run ends it without a slot (the second still goes next).
    r = await stack.http.post(f"/v1/runs/{third['id']}/cancel", headers=stack.auth())
    assert r.status_code == 202, r.text
    await until(lambda: status_of(stack, third["id"], "CANCELED"))
    assert await stack.steps(third["id"]) == []
    await asyncio.wait_for(stack.result(first), 60)
    await asyncio.wait_for(stack.result(second), 60)
    [one] = await stack.steps(first["id"])
    [two] = await stack.steps(second["id"])
    # One at a time: the second began after the first finished.
    assert datetime.fromisoformat(two["startedAt"]) >= datetime.fromisoformat(one["finishedAt"])
    await until(lambda: status_of(stack, second["id"], "SUCCEEDED"))
    assert second["id"] not in await listed(stack, "QUEUED")
    # Each run's release reached the gate (a signal sent with a run's closing commands
    # is dropped by Temporal: the slot was then only freed by the 10 s holder check).
    tenant = first["workflowId"].split("/")[0]
    gate = stack.client.get_workflow_handle(gate_id(tenant, "one-at-a-time"))
    released = set()
    async for event in gate.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == GATE_RELEASE_SIGNAL:
                released.add(attrs.input.payloads[0].data.decode().strip('"'))
    assert {first["workflowId"], second["workflowId"], third["workflowId"]} <= released
    await stack.record_history(second, "flow_queued_then_granted_released_on_close")
    await stack.record_history(third, "flow_cancelled_while_queued_released_on_close")


@pytest.mark.timeout(180)
async def test_failed_and_terminated_runs_free_their_slots(stack: Stack) -> None:
    await stack.publish(
        "fails",
        {
            "limits": {"maxConcurrentRuns": 1},
            "steps": [
                {"id": "wait", "type": "delay", "duration": "PT1S"},
                {"id": "boom", "type": "transform.assign", "assign": {"x": "$error('boom')"}},
            ],
        },
    )
    failing = [await stack.start("fails", {}) for _ in range(3)]
    for run in failing:  # each failure frees the slot for the next
        await until(lambda run=run: status_of(stack, run["id"], "FAILED"), within=60)
    await stack.publish(
        "forever",
        {
            "limits": {"maxConcurrentRuns": 1},
            "steps": [{"id": "w", "type": "delay", "duration": "PT1H"}],
        },
    )
    holder = await stack.start("forever", {})
    await until(lambda: status_of(stack, holder["id"], "WAITING"))
    waiting = await stack.start("forever", {})
    await until(lambda: status_of(stack, waiting["id"], "QUEUED"))
    # Terminated: no code of the run runs; the gate's holder check frees the slot.
    await stack.client.get_workflow_handle(holder["workflowId"]).terminate("test")
    await until(lambda: status_of(stack, waiting["id"], "WAITING"), within=90)
    await stack.client.get_workflow_handle(waiting["workflowId"]).terminate("test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def api_process(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """``tempoflow api`` in a process of its own, on the stack's servers and task queue."""
    port = _free_port()
    env = {
        **os.environ,
        "TEMPOFLOW_ENVIRONMENT": "test",
        "TEMPOFLOW_DATABASE_URL": stack.settings.database_url,
        "TEMPOFLOW_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "TEMPOFLOW_TASK_QUEUE": stack.settings.task_queue,
        "TEMPOFLOW_API_KEY_PEPPER": stack.settings.api_key_pepper,
        "TEMPOFLOW_API_HOST": "127.0.0.1",
        "TEMPOFLOW_API_PORT": str(port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher.cli",
        "api",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def up() -> bool:
                assert proc.returncode is None, "the API process exited"
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(up, within=60)
            yield http
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(600)
async def test_two_api_processes_never_start_more_than_the_limit(stack: Stack) -> None:
    limit, total = 5, 200
    await stack.publish(
        "limited",
        {
            "limits": {"maxConcurrentRuns": limit},
            # An activity, not a timer: the dev server fires timers about a second late,
            # which made each of the 40 rounds of five take over a second.
            "steps": [{"id": "work", "type": "action.call", "action": "test.echo", "input": {}}],
        },
    )
    async with api_process(stack) as a, api_process(stack) as b:
        semaphore = asyncio.Semaphore(20)

        async def start(index: int) -> str:
            http = a if index % 2 == 0 else b
            async with semaphore:
                r = await http.post(
                    "/v1/runs",
                    headers=stack.auth(),
                    json={"definition": "limited", "input": {"i": index}},
                )
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        ids = await asyncio.gather(*(start(i) for i in range(total)))
    assert len(set(ids)) == total

    async def all_done() -> list[RunRow] | None:
        async with stack.sessions() as session:
            rows = list(
                (await session.execute(select(RunRow).where(RunRow.run_id.in_(ids)))).scalars()
            )
        return rows if len(rows) == total and all(r.status == "SUCCEEDED" for r in rows) else None

    runs = await until(all_done, within=500)
    async with stack.sessions() as session:
        steps = list(
            (await session.execute(select(StepRow).where(StepRow.run_id.in_(ids)))).scalars()
        )
    # Every start ran exactly once: one step, one attempt, per run.
    assert sorted(s.run_id for s in steps) == sorted(ids)
    assert all(s.status == "SUCCEEDED" for s in steps)
    began = {s.run_id: s.started_at for s in steps}
    # Never more than the limit at once: from each run's first step to its close.
    edges = sorted(
        [(began[r.run_id], 1) for r in runs] + [(r.closed_at, -1) for r in runs],
        key=lambda e: (e[0], e[1]),  # an end at the same instant comes first
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    assert peak <= limit, peak
    assert peak == limit  # the limit was used, not just respected


async def test_grants_go_out_together_and_a_vanished_run_frees_its_slot(stack: Stack) -> None:
    """The gate sends the grants of one workflow task from a local activity (markers in
    its history, no signal commands); a run it grants that no longer exists is reported
    back, so its slot is free again."""
    await stack.publish("two-at-a-time", {**SLOW, "limits": {"maxConcurrentRuns": 2}})
    runs = [await stack.start("two-at-a-time", {"n": n}) for n in range(4)]
    for run in runs:
        await asyncio.wait_for(stack.result(run), 60)
    tenant = runs[0]["workflowId"].split("/")[0]
    gate = stack.client.get_workflow_handle(gate_id(tenant, "two-at-a-time"))
    markers = commands = 0
    async for event in gate.fetch_history_events():
        markers += event.HasField("marker_recorded_event_attributes")
        commands += event.HasField("signal_external_workflow_execution_initiated_event_attributes")
    assert commands == 0 and markers >= 2  # the patch, and at least one batch of grants
    done = runs[0]["workflowId"]
    env = ActivityEnvironment(client=stack.client)
    gone = await env.run(
        FlowActivities(lambda batches: asyncio.sleep(0)).grant,
        [done, f"{tenant}/never-started"],
    )
    assert gone == [done, f"{tenant}/never-started"]
