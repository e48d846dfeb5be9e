"""Projections are rebuildable from Temporal history alone: empty the tables, rebuild,
compare row by row."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

from sqlalchemy import text

from launcher.rebuild import rebuild
from tests.integration.conftest import Stack, until

CHILD = {
    "steps": [
        {"id": "double", "type": "transform.assign", "assign": {"n": "payload.n * 2"}},
        {"id": "back", "type": "control.return", "output": {"$expr": "vars.n"}},
    ]
}
EVERYTHING = {
    "steps": [
        {"id": "set", "type": "state.set", "values": {"items": [1, 2, 3], "tries": 0}},
        {"id": "assign", "type": "transform.assign", "assign": {"total": "$sum(vars.items)"}},
        {
            "id": "echo",
            "type": "action.call",
            "action": "test.echo",
            "input": {"total": {"$expr": "vars.total"}},
            "output": "echoed",
        },
        {
            "id": "flaky",
            "type": "action.call",
            "action": "test.flaky",
            "input": {"failures": 1},
            "retry": {"maxAttempts": 3, "initialInterval": "PT0.1S"},
        },
        {
            "id": "if",
            "type": "control.if",
            "condition": "vars.total > 5",
            "then": [{"id": "big", "type": "state.set", "values": {"big": True}}],
            "else": [{"id": "small", "type": "state.set", "values": {"big": False}}],
        },
        {
            "id": "switch",
            "type": "control.switch",
            "cases": [
                {
                    "when": "vars.big",
                    "steps": [{"id": "lane", "type": "state.set", "values": {"lane": "b"}}],
                }
            ],
        },
        {
            "id": "each",
            "type": "control.forEach",
            "items": "vars.items",
            "concurrency": 2,
            "output": "tens",
            "result": {"$expr": "item * 10"},
            "steps": [
                {
                    "id": "per",
                    "type": "action.call",
                    "action": "test.echo",
                    "input": {"item": {"$expr": "item"}},
                }
            ],
        },
        {
            "id": "par",
            "type": "control.parallel",
            "branches": {
                "left": [{"id": "l", "type": "action.call", "action": "core.noop"}],
                "right": [{"id": "r", "type": "delay", "duration": "PT0.2S"}],
            },
        },
        {
            "id": "try",
            "type": "control.tryCatch",
            "try": [{"id": "boom", "type": "action.call", "action": "test.fail"}],
            "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
            "finally": [{"id": "fin", "type": "state.set", "values": {"fin": True}}],
        },
        {
            "id": "child",
            "type": "control.callWorkflow",
            "definition": "rb-child",
            "input": {"n": {"$expr": "vars.total"}},
            "output": "child",
        },
        {
            "id": "paid",
            "type": "event.wait",
            "event": "rb.paid",
            "correlationKey": "payload.order",
            "output": "paid",
        },
        {
            "id": "approve",
            "type": "human.task",
            "title": "Approve",
            "form": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            "output": "approval",
        },
        {"id": "done", "type": "control.return", "output": {"$expr": "vars.child"}},
    ]
}
WAIT_FOREVER = {
    "steps": [
        {"id": "w", "type": "event.wait", "event": "rb.never", "correlationKey": "'k'"},
    ]
}
# Operational columns, not facts of the run: the lease of an attempt's claim and the
# projection's own write time.
SKIPPED = {"updated_at", "claimed_until", "claimed_attempt"}
TABLES = {
    "runs": ("run_id",),
    "steps": ("run_id", "seq"),
    "waits": ("run_id", "seq"),
    "human_tasks": ("id",),
    "action_invocations": ("tenant", "action", "action_version", "idempotency_key"),
}


async def _snapshot(
    stack: Stack, run_ids: list[str]
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    snap: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    async with stack.sessions() as session:
        for table, key in TABLES.items():
            rows = (
                await session.execute(
                    text(f"SELECT * FROM {table} WHERE run_id = ANY(:ids)"), {"ids": run_ids}
                )
            ).mappings()
            snap[table] = {
                tuple(r[k] for k in key): {c: v for c, v in r.items() if c not in SKIPPED}
                for r in rows
            }
        last_attempts = (
            await session.execute(
                text(
                    "SELECT a.* FROM action_attempts a JOIN action_invocations i USING"
                    " (tenant, action, action_version, idempotency_key)"
                    " WHERE a.run_id = ANY(:ids) AND a.attempt = i.attempts"
                ),
                {"ids": run_ids},
            )
        ).mappings()
        snap["last attempts"] = {
            (r["idempotency_key"], r["run_id"], r["attempt"]): dict(r) for r in last_attempts
        }
    return snap


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, datetime) and isinstance(after, datetime):
        return abs((before - after).total_seconds()) < 5  # activity clock vs event time
    return bool(before == after)


async def test_every_projection_is_rebuilt_from_history(stack: Stack) -> None:
    r = await stack.http.put("/v1/event-types/rb.paid", headers=stack.auth(), json={})
    assert r.status_code in (200, 201), r.text
    await stack.publish("rb-child", CHILD)
    await stack.publish("rb-all", EVERYTHING)
    await stack.publish("rb-wait", WAIT_FOREVER)
    run = await stack.start("rb-all", {"order": "o-1"})
    stuck = await stack.start("rb-wait")

    async def task_open() -> Any:
        r = await stack.http.get(f"/v1/tasks?runId={run['id']}", headers=stack.auth())
        items = r.json()["items"]
        return items[0] if items else None

    async def waiting() -> bool:
        r = await stack.http.get(f"/v1/runs/{run['id']}/waits", headers=stack.auth())
        return any(w["status"] == "WAITING" for w in r.json()["items"])

    await until(waiting)
    r = await stack.http.post(
        "/v1/events",
        headers=stack.auth("ingest"),
        json={"name": "rb.paid", "correlationKey": "o-1", "payload": {"order": "o-1"}},
    )
    assert r.status_code == 202, r.text
    task = await until(task_open)
    r = await stack.http.post(
        f"/v1/tasks/{task['id']}/complete", headers=stack.auth(), json={"data": {"ok": True}}
    )
    assert r.status_code == 200, r.text
    assert (await stack.result(run))["output"] == 12
    r = await stack.http.post(f"/v1/runs/{stuck['id']}/terminate", headers=stack.auth())
    assert r.status_code == 200, r.text

    children = await stack.http.get(f"/v1/runs?parent={run['id']}", headers=stack.auth())
    run_ids = [run["id"], stuck["id"], *(c["id"] for c in children.json()["items"])]
    assert len(run_ids) == 3

    async def settled() -> bool:
        view = await stack.run_view(run["id"])
        return bool(view["status"] == "SUCCEEDED")

    await until(settled)
    await asyncio.sleep(1)  # the last projection writes of the child and the stuck run
    before = await _snapshot(stack, run_ids)
    assert len(before["steps"]) >= 25 and len(before["action_invocations"]) >= 7
    assert {r["status"] for r in before["runs"].values()} == {"SUCCEEDED", "TERMINATED"}

    async with stack.sessions.begin() as session:
        for table in (*TABLES, "action_attempts"):
            await session.execute(
                text(f"DELETE FROM {table} WHERE run_id = ANY(:ids)"), {"ids": run_ids}
            )
    assert all(not rows for rows in (await _snapshot(stack, run_ids)).values())

    summary = await rebuild(stack.client, stack.sessions, tenant=stack.tenant)
    assert summary.failures == [] and summary.runs == 3 and summary.closed_by_temporal == 1
    after = await _snapshot(stack, run_ids)
    for table, rows in before.items():
        assert rows.keys() == after[table].keys(), table
        for key, row in rows.items():
            differs = {
                column: (value, after[table][key][column])
                for column, value in row.items()
                if not _same(value, after[table][key][column])
            }
            assert differs == {}, (table, key)


async def test_the_cli_rebuilds_one_run(stack: Stack, database_url: str) -> None:
    await stack.publish("rb-child", CHILD)
    run = await stack.start("rb-child", {"n": 4})
    await stack.result(run)
    await until(lambda: _succeeded(stack, run["id"]))
    async with stack.sessions.begin() as session:
        await session.execute(text("DELETE FROM steps WHERE run_id = :id"), {"id": run["id"]})
        await session.execute(text("DELETE FROM runs WHERE run_id = :id"), {"id": run["id"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    env["TEMPOFLOW_DATABASE_URL"] = database_url
    env["TEMPOFLOW_TEMPORAL_ADDRESS"] = stack.client.service_client.config.target_host

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launcher.cli", "projections", "rebuild", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = await asyncio.to_thread(cli)
    assert refused.returncode == 2 and "--run ID, --since TIME or --all" in refused.stderr
    done = await asyncio.to_thread(cli, "--run", run["id"], "--tenant", stack.tenant)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["runs"] == 1
    view = await stack.run_view(run["id"])
    assert view["status"] == "SUCCEEDED" and view["output"] == 8
    assert [s["stepId"] for s in await stack.steps(run["id"])] == ["double", "back"]


async def _succeeded(stack: Stack, run_id: str) -> bool:
    return bool((await stack.run_view(run_id))["status"] == "SUCCEEDED")
