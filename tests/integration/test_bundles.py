"""Bundles: export, import (create-only, force, dry run), every refusal at once, the round
trip into an empty tenant and the CLI, against the real API, PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from app.schedules import schedule_id
from launcher import cli
from projections import workers
from tempoflow.bundle import canonical_json
from tests.integration.conftest import Stack, make_keys, open_stack, until
from tests.servers import free_port

IMPORT = "/v1/definitions:import"
EXPORT = "/v1/definitions:export"
SECRET_VALUE = "s3cr3t-value-never-exported"

CHILD = {
    "steps": [{"id": "double", "type": "transform.assign", "assign": {"n": "payload.n * 2"}}],
    "output": {"n": {"$expr": "vars.n"}},
}


def order(version: int) -> dict[str, Any]:
    """The parent workflow: an action, a child workflow, an event trigger, settings."""
    return {
        "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {
                "id": "echo",
                "type": "action.call",
                "action": "test.echo",
                "input": {"n": {"$expr": "payload.n"}, "v": version},
                "output": "echoed",
            },
            {
                "id": "child",
                "type": "control.callWorkflow",
                "definition": "child",
                "input": {"n": {"$expr": "vars.echoed.n"}},
                "output": "child",
            },
        ],
        "output": {"n": {"$expr": "vars.child.n"}, "v": version},
        "triggers": [{"event": "order.paid", "filter": "event.payload.n > 0"}],
        "redact": ["/input/card"],
        "retention": {"closedRuns": "P30D"},
    }


SECRETIVE = {
    "steps": [
        {
            "id": "call",
            "type": "action.call",
            "action": "test.echo",
            "input": {"token": {"$secret": "api-token"}},
        },
        {
            "id": "wait",
            "type": "event.wait",
            "event": "order.paid",
            "correlationKey": "payload.id",
            "timeout": "PT1M",
            "onTimeout": "continue",
        },
    ],
}
SCHEDULED = {
    "steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "1"}}],
    "triggers": [
        {"name": "nightly", "schedule": {"cron": "0 3 * * *"}, "input": {}},
        {"name": "inbound", "webhook": {"secrets": [{"$secret": "hook-key"}]}},
    ],
}


async def heartbeat(stack: Stack, names: list[str] | None = None) -> None:
    """A worker of the stack's task queue reports its actions (all, or ``names``)."""
    specs = [s for s in stack.worker_registry.specs() if names is None or s.name in names]
    async with stack.sessions.begin() as session:
        await workers.heartbeat(
            session,
            f"w-{uuid.uuid4().hex[:8]}",
            stack.settings.task_queue,
            [{"name": s.name, "version": s.version} for s in specs],
        )


async def seed(stack: Stack) -> None:
    """A tenant with an event type, a secret, a child, a parent with two versions and a
    newer draft, a definition with a secret reference and one with a schedule."""
    h = stack.auth()
    r = await stack.http.put(
        "/v1/event-types/order.paid",
        headers=h,
        json={"schema": {"type": "object"}, "correlation": {"paths": ["/payload/id"]}},
    )
    assert r.status_code == 201, r.text
    r = await stack.http.put("/v1/secrets/api-token", headers=h, json={"value": SECRET_VALUE})
    assert r.status_code in (200, 201), r.text
    await stack.publish("child", CHILD)
    await stack.publish("order", order(1))
    await stack.publish("order", order(2))
    draft = {**order(3), "description": "work in progress"}
    r = await stack.http.put(
        "/v1/definitions/order",
        headers=h,
        json={"name": "Orders", "description": "the order flow", "definition": draft},
    )
    assert r.status_code == 200, r.text
    await stack.publish("secretive", SECRETIVE)
    await stack.publish("scheduled", SCHEDULED)
    r = await stack.http.post("/v1/definitions/scheduled/pause", headers=h)
    assert r.status_code == 200, r.text


async def export(stack: Stack, headers: dict[str, str], *keys: str) -> str:
    r = await stack.http.get(EXPORT, headers=headers, params=[("key", k) for k in keys])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.text


def without_time(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if '"exportedAt"' not in line)


async def test_round_trip_into_an_empty_tenant(stack: Stack, other_tenant: dict[str, str]) -> None:
    await seed(stack)
    await heartbeat(stack)
    text = await export(stack, stack.auth())
    bundle = json.loads(text)
    assert text == canonical_json(bundle)  # sorted keys, 2-space indent, final newline
    assert bundle["format"] == "tempoflow.bundle" and bundle["formatVersion"] == 1
    assert [w["key"] for w in bundle["workflows"]] == ["child", "order", "scheduled", "secretive"]
    orders = bundle["workflows"][1]
    assert [v["version"] for v in orders["versions"]] == [1, 2]
    assert orders["versions"][1]["definition"] == order(2)
    assert orders["draft"]["description"] == "work in progress"
    assert (orders["name"], orders["description"], orders["paused"]) == (
        "Orders",
        "the order flow",
        False,
    )
    assert orders["settings"] == {"redact": ["/input/card"], "retention": {"closedRuns": "P30D"}}
    assert orders["triggers"] == order(2)["triggers"]
    assert bundle["workflows"][2]["paused"] is True
    # Audit fields and secret values never; secret references yes.
    for audit_field in ("publishedAt", "publishedBy", "createdAt", "updatedAt", "contentHash"):
        assert audit_field not in text
    assert SECRET_VALUE not in text
    assert bundle["workflows"][3]["versions"][0]["definition"]["steps"][0]["input"] == {
        "token": {"$secret": "api-token"}
    }
    assert bundle["eventTypes"] == [
        {
            "name": "order.paid",
            "description": None,
            "schema": {"type": "object"},
            "correlation": {"paths": ["/payload/id"]},
            "bufferTtlSeconds": 3600,
        }
    ]
    assert bundle["schemas"] == []
    assert bundle["dependencies"] == {
        "actions": [{"name": "test.echo", "version": 1}],
        "nodeTypes": ["action.call", "control.callWorkflow", "event.wait", "transform.assign"],
        "eventTypes": ["order.paid"],
        "schemas": [],
        "definitions": ["child"],
    }

    r = await stack.http.post(IMPORT, headers=other_tenant, content=text)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["created"]["workflows"] == ["child", "order", "scheduled", "secretive"]
    assert summary["created"]["eventTypes"] == ["order.paid"]
    assert {"key": "order", "version": 2, "bundleVersion": 2} in summary["created"]["versions"]
    assert summary["updated"]["workflows"] == summary["unchanged"]["workflows"] == []
    # The secret's value stays behind: the import says so.
    assert [(w["code"], w["path"]) for w in summary["warnings"]] == [
        ("secret.unknown", "/workflows/2/versions/0/definition/triggers/1/webhook/secrets/0"),
        ("secret.unknown", "/workflows/3/versions/0/definition/steps/0/input/token"),
    ]

    again = await export(stack, other_tenant)
    assert without_time(again) == without_time(text)
    assert again != without_time(again)  # exportedAt is there

    # Publishing side effects: the event trigger subscribes, the schedule exists (paused).
    tenant = await _tenant_of(stack, other_tenant["Authorization"].split()[1])
    desc = await stack.client.get_schedule_handle(
        schedule_id(tenant, "scheduled", "nightly")
    ).describe()
    assert desc.schedule.state.paused is True
    # The webhook trigger has a hook of its own in the other tenant.
    mine = await stack.http.get("/v1/definitions/scheduled/hooks", headers=stack.auth())
    theirs = await stack.http.get("/v1/definitions/scheduled/hooks", headers=other_tenant)
    assert theirs.status_code == 200, theirs.text
    assert len(theirs.json()["items"]) == len(mine.json()["items"]) == 1
    assert theirs.json()["items"][0]["hookId"] != mine.json()["items"][0]["hookId"]

    # The imported workflow runs to completion (v2, its child from the import too).
    r = await stack.http.post(
        "/v1/runs", headers=other_tenant, json={"definition": "order", "input": {"n": 21}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    assert await stack.result(r.json()) == {"output": {"n": 42, "v": 2}}

    # The event trigger of the imported version starts runs in the other tenant.
    r = await stack.http.post(
        "/v1/events",
        headers=other_tenant,
        json={"name": "order.paid", "payload": {"id": "o1", "n": 5}},
    )
    assert r.status_code == 202, r.text

    async def triggered() -> bool:
        r = await stack.http.get("/v1/runs", headers=other_tenant, params={"definition": "order"})
        return len(r.json()["items"]) >= 2

    await until(triggered)

    # Importing the same bundle again changes nothing (not a conflict).
    r = await stack.http.post(IMPORT, headers=other_tenant, content=text)
    assert r.status_code == 200, r.text
    assert r.json()["unchanged"]["workflows"] == ["child", "order", "scheduled", "secretive"]
    assert r.json()["created"]["versions"] == []

    # Audited.
    r = await stack.http.get("/v1/audit", headers=other_tenant, params={"action": "bundle.import"})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    r = await stack.http.get(
        "/v1/audit", headers=other_tenant, params={"action": "definition.import", "target": "order"}
    )
    # Only what changed: the second import left "order" unchanged.
    assert [e["details"]["versions"] for e in r.json()["items"]] == [[1, 2]]


async def _tenant_of(stack: Stack, key: str) -> str:
    from app.auth import authenticate

    async with stack.sessions() as session:
        principal = await authenticate(session, key, stack.settings.api_key_pepper)
    assert principal is not None
    return principal.tenant


async def test_create_only_conflicts_and_dry_run(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    await seed(stack)
    await heartbeat(stack)
    bundle = json.loads(await export(stack, stack.auth()))

    # Dry run into an empty tenant: the summary, nothing written.
    r = await stack.http.post(IMPORT, headers=other_tenant, params={"dryRun": "true"}, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["dryRun"] is True
    assert len(r.json()["created"]["workflows"]) == 4
    r = await stack.http.get("/v1/definitions/order", headers=other_tenant)
    assert r.status_code == 404
    r = await stack.http.get("/v1/event-types/order.paid", headers=other_tenant)
    assert r.status_code == 404

    # Create-only into the exporting tenant with two changed workflows: 409 lists both.
    changed = copy.deepcopy(bundle)
    changed["workflows"][0]["name"] = "renamed child"
    changed["workflows"][1]["draft"] = order(9)
    changed["eventTypes"][0]["bufferTtlSeconds"] = 60
    r = await stack.http.post(IMPORT, headers=stack.auth(), json=changed)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "definition_key_conflict"
    assert problem["keys"] == ["child", "order"]
    assert {e["code"] for e in problem["errors"]} == {
        "definition_key_conflict",
        "event_type_conflict",
    }
    assert {e["path"] for e in problem["errors"]} == {
        "/workflows/0/key",
        "/workflows/1/key",
        "/eventTypes/0",
    }
    r = await stack.http.get("/v1/definitions/child", headers=stack.auth())
    assert r.json()["name"] == "child"  # nothing written

    # Not admin: refused.
    r = await stack.http.post(IMPORT, headers=stack.auth("publisher"), json=bundle)
    assert r.status_code == 403


async def test_force_keeps_matching_versions_and_adds_the_others(stack: Stack) -> None:
    await seed(stack)
    await heartbeat(stack)
    h = stack.auth()
    before = await stack.start("order", {"n": 1})  # pinned to v2
    bundle = json.loads(await export(stack, h, "order", "child"))
    orders = bundle["workflows"][1]
    # The bundle: v1 as here, v2 changed, a v3 more; new metadata and draft.
    orders["versions"][1]["definition"] = order(20)
    orders["versions"].append(
        {**orders["versions"][1], "version": 3, "definition": order(30), "name": "Orders 3"}
    )
    orders["settings"] = {k: v for k, v in order(30).items() if k in ("redact", "retention")}
    orders["triggers"] = order(30)["triggers"]
    orders["name"] = "Orders (imported)"
    orders["draft"] = order(31)

    r = await stack.http.post(
        IMPORT, headers=h, params={"force": "true", "dryRun": "true"}, json=bundle
    )
    assert r.status_code == 200, r.text
    planned = r.json()
    r = await stack.http.get("/v1/definitions/order/versions", headers=h)
    assert [v["version"] for v in r.json()] == [2, 1]  # the dry run wrote nothing

    r = await stack.http.post(IMPORT, headers=h, params={"force": "true"}, json=bundle)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert {**summary, "dryRun": True} == planned
    assert summary["updated"]["workflows"] == ["order"]
    assert summary["unchanged"]["workflows"] == ["child"]
    assert summary["created"]["versions"] == [
        {"key": "order", "version": 3, "bundleVersion": 2},
        {"key": "order", "version": 4, "bundleVersion": 3},
    ]
    assert summary["unchanged"]["versions"][-1] == {
        "key": "order",
        "version": 1,
        "bundleVersion": 1,
    }

    r = await stack.http.get("/v1/definitions/order", headers=h)
    body = r.json()
    assert (body["name"], body["definition"], body["latestVersion"]) == (
        "Orders (imported)",
        order(31),
        4,
    )
    r = await stack.http.get("/v1/definitions/order/versions/2", headers=h)
    assert r.json()["definition"] == order(2)  # existing versions are immutable
    assert await stack.result(before) == {"output": {"n": 2, "v": 2}}  # the run kept its version
    after = await stack.start("order", {"n": 1})
    assert after["version"] == 4
    assert await stack.result(after) == {"output": {"n": 2, "v": 30}}

    # The bundle's latest equals an older version here: it is published again (v5).
    older = json.loads(await export(stack, h, "order"))
    older["workflows"][0]["versions"] = [older["workflows"][0]["versions"][0]]  # v1 only
    body1 = older["workflows"][0]["versions"][0]["definition"]
    older["workflows"][0]["settings"] = {
        k: v for k, v in body1.items() if k in ("redact", "retention")
    }
    older["workflows"][0]["triggers"] = body1["triggers"]
    r = await stack.http.post(IMPORT, headers=h, params={"force": "true"}, json=older)
    assert r.status_code == 200, r.text
    assert r.json()["created"]["versions"] == [{"key": "order", "version": 5, "bundleVersion": 1}]
    r = await stack.http.get("/v1/definitions/order", headers=h)
    assert r.json()["latestVersion"] == 5


async def test_force_carries_the_pause_to_the_schedules(stack: Stack) -> None:
    await stack.publish("scheduled", SCHEDULED)
    handle = stack.client.get_schedule_handle(schedule_id(stack.tenant, "scheduled", "nightly"))
    assert (await handle.describe()).schedule.state.paused is False
    bundle = json.loads(await export(stack, stack.auth(), "scheduled"))
    bundle["workflows"][0]["paused"] = True
    r = await stack.http.post(IMPORT, headers=stack.auth(), params={"force": "true"}, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["updated"]["workflows"] == ["scheduled"]
    assert r.json()["created"]["versions"] == []
    assert (await handle.describe()).schedule.state.paused is True
    r = await stack.http.get("/v1/definitions/scheduled", headers=stack.auth())
    assert r.json()["paused"] is True


async def test_every_refusal_at_once_and_nothing_written(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    await seed(stack)
    await heartbeat(stack, names=["http.request"])  # no worker has test.echo
    bundle = json.loads(await export(stack, stack.auth(), "order", "secretive"))
    # order needs child (not in the bundle, not in the other tenant); drop the event type.
    bundle["eventTypes"] = []
    r = await stack.http.post(IMPORT, headers=other_tenant, json=bundle)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "bundle_invalid"
    found = {(e["code"], e["path"]) for e in problem["errors"]}
    assert found == {
        ("dependency.action_unavailable", "/workflows/0/versions/0/definition/steps/0/action"),
        ("dependency.definition_missing", "/workflows/0/versions/0/definition/steps/1/definition"),
        ("dependency.event_type_missing", "/workflows/0/versions/0/definition/triggers/0/event"),
    }
    r = await stack.http.get("/v1/definitions", headers=other_tenant)
    assert r.json()["items"] == []
    r = await stack.http.get("/v1/audit", headers=other_tenant)
    assert r.json()["items"] == []  # a refused import leaves no audit entry either

    # Schema violations, each with its path, all at once.
    broken = copy.deepcopy(bundle)
    broken["workflows"][0]["key"] = "Not A Key"
    broken["workflows"][1]["versions"][0]["version"] = 0
    broken["workflows"][1]["extra"] = 1
    del broken["exportedAt"]
    r = await stack.http.post(IMPORT, headers=other_tenant, json=broken)
    assert r.status_code == 422, r.text
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {
        "/workflows/0/key",
        "/workflows/1/versions/0/version",
        "/workflows/1/extra",
        "/exportedAt",
    }

    # A published version that does not validate: its errors, under its pointer.
    invalid = copy.deepcopy(bundle)
    invalid["workflows"][1]["versions"][0]["definition"]["steps"][0]["type"] = "no.such"
    r = await stack.http.post(IMPORT, headers=other_tenant, json=invalid)
    assert r.status_code == 422
    assert any(
        e["path"].startswith("/workflows/1/versions/0/definition/steps/0")
        for e in r.json()["errors"]
    )

    # An event type PUT /v1/event-types would refuse.
    bad_type = copy.deepcopy(bundle)
    bad_type["eventTypes"] = [
        {
            "name": "order.paid",
            "description": None,
            "schema": {"type": "nonsense"},
            "correlation": {"expression": "(("},
            "bufferTtlSeconds": 60,
        }
    ]
    r = await stack.http.post(IMPORT, headers=other_tenant, json=bad_type)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert {"/eventTypes/0/schema/type", "/eventTypes/0/correlation/expression"} <= paths

    # A newer format: refused with the version it needs.
    r = await stack.http.post(
        IMPORT, headers=other_tenant, json={**bundle, "formatVersion": 2, "novelty": {}}
    )
    assert r.status_code == 422
    assert r.json()["code"] == "bundle_format_unsupported"
    assert r.json()["formatVersion"] == 2
    assert "needs format version 2" in r.json()["detail"]

    # Not JSON at all.
    r = await stack.http.post(IMPORT, headers=other_tenant, content=b"{nope")
    assert r.status_code == 422 and r.json()["code"] == "bundle_invalid"

    # An unknown key to export: 404 naming it.
    r = await stack.http.get(
        EXPORT, headers=stack.auth(), params=[("key", "order"), ("key", "nope")]
    )
    assert r.status_code == 404
    assert [e["message"] for e in r.json()["errors"]] == ["nope"]


async def test_bundle_over_the_limit_is_413(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with open_stack(
        database_url, temporal_client, sessions, max_bundle_bytes=4096, max_request_bytes=2048
    ) as stack:
        bundle = {
            "format": "tempoflow.bundle",
            "formatVersion": 1,
            "exportedAt": "x",
            "workflows": [],
            "padding": "x" * 5000,
        }
        r = await stack.http.post(IMPORT, headers=stack.auth(), json=bundle)
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "payload_too_large"
        assert "TEMPOFLOW_MAX_BUNDLE_BYTES" in r.json()["hint"]
        # Between the request limit and the bundle limit: the import reads it.
        bundle["padding"] = "x" * 3000
        r = await stack.http.post(IMPORT, headers=stack.auth(), json=bundle)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/padding"


async def test_served_schema_is_the_repositorys(stack: Stack, repo_root: Path) -> None:
    r = await stack.http.get("/v1/schemas/bundle.json", headers=stack.auth("operator"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    assert r.text == (repo_root / "schemas" / "bundle.v1.json").read_text()


async def test_cli_export_and_import(
    stack: Stack, other_tenant: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(stack)
    await heartbeat(stack)
    port = free_port()
    app = stack.http._transport.app  # type: ignore[attr-defined]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: asyncio.sleep(0, server.started))
        url = f"http://127.0.0.1:{port}"
        admin = stack.keys["admin"]
        other = other_tenant["Authorization"].split()[1]
        path = tmp_path / "bundle.json"

        def run(*args: str) -> int:
            return cli.main(["bundle", *args, "--api-url", url])

        code = await asyncio.to_thread(
            run, "export", "--key", "order", "--key", "child", "-o", str(path), "--api-key", admin
        )
        assert code == 0
        assert "exported 2 workflow(s) with 3 version(s)" in capsys.readouterr().out
        assert json.loads(path.read_text())["workflows"][0]["key"] == "child"
        code = await asyncio.to_thread(run, "export", "--key", "child", "--api-key", admin)
        assert code == 0
        assert json.loads(capsys.readouterr().out)["workflows"][0]["key"] == "child"

        code = await asyncio.to_thread(run, "import", str(path), "--dry-run", "--api-key", other)
        out = capsys.readouterr().out
        assert code == 0
        assert ["created", "workflows", "order"] in [line.split() for line in out.splitlines()]
        assert "dry run: nothing written" in out

        code = await asyncio.to_thread(run, "import", str(path), "--json", "--api-key", other)
        assert code == 0
        assert json.loads(capsys.readouterr().out)["created"]["workflows"] == ["child", "order"]

        # The same file changed: a conflict is exit 1 with the problem; --force imports it.
        changed = json.loads(path.read_text())
        changed["workflows"][0]["name"] = "other"
        path.write_text(json.dumps(changed))
        code = await asyncio.to_thread(run, "import", str(path), "--json", "--api-key", other)
        assert code == 1
        error = json.loads(capsys.readouterr().out)["error"]
        assert (error["exitCode"], error["status"]) == (1, 409)
        assert error["problem"]["code"] == "definition_key_conflict"
        code = await asyncio.to_thread(run, "import", str(path), "--force", "--api-key", other)
        assert code == 0
        out = capsys.readouterr().out
        assert ["updated", "workflows", "child"] in [line.split() for line in out.splitlines()]

        # Usage: a file that does not exist (2); the server unreachable (3).
        code = await asyncio.to_thread(run, "import", str(tmp_path / "nope"), "--api-key", other)
        assert code == 2
        code = await asyncio.to_thread(
            cli.main,
            [
                "bundle",
                "export",
                "--api-url",
                f"http://127.0.0.1:{free_port()}",
                "--api-key",
                admin,
            ],
        )
        assert code == 3
    finally:
        server.should_exit = True
        await task


async def test_keys_and_tenants(stack: Stack) -> None:
    """Export sees only the caller's tenant."""
    await stack.publish("mine", CHILD)
    keys = await make_keys(stack.sessions, "x" + stack.tenant, stack.settings.api_key_pepper)
    r = await stack.http.get(EXPORT, headers={"Authorization": f"Bearer {keys['operator']}"})
    assert r.status_code == 200
    assert json.loads(r.text)["workflows"] == []
    r = await stack.http.get(
        EXPORT,
        headers={"Authorization": f"Bearer {keys['operator']}"},
        params={"key": "mine"},
    )
    assert r.status_code == 404


async def test_named_schemas_travel_with_the_bundle(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    """A bundle's named schemas are created in the target (checked as PUT /v1/schemas
    checks them), exported again, and immutable."""
    draft = {
        "inputSchema": {"$ref": "schema:payload.Order.v1"},
        "steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "1"}}],
    }
    bundle: dict[str, Any] = {
        "format": "tempoflow.bundle",
        "formatVersion": 1,
        "exportedAt": "2026-11-23T21:00:00Z",
        "workflows": [
            {
                "key": "typed",
                "name": "typed",
                "description": None,
                "paused": False,
                "draft": draft,
                "versions": [],
                "settings": {},
                "triggers": [],
            }
        ],
        "schemas": [
            {"ref": "payload.Order.v1", "schema": {"$ref": "schema:payload.Line.v1"}},
            {"ref": "payload.Line.v1", "schema": {"type": "object"}},
        ],
    }
    broken = copy.deepcopy(bundle)
    broken["schemas"][1]["schema"] = {"type": "nonsense", "$id": "elsewhere"}
    broken["schemas"].append({"ref": "bad ref", "schema": {"$ref": "schema:nowhere.v1"}})
    r = await stack.http.post(IMPORT, headers=other_tenant, json=broken)
    assert r.status_code == 422, r.text
    assert {(e["path"], e["code"]) for e in r.json()["errors"]} == {
        ("/schemas/1/schema/type", "schema.invalid"),
        ("/schemas/1/schema/$id", "schema.id_not_allowed"),
        ("/schemas/2/ref", "schema_ref_invalid"),
        ("/schemas/2/schema/$ref", "dependency.schema_missing"),
    }
    r = await stack.http.get("/v1/schemas", headers=other_tenant)
    assert r.json()["items"] == []

    r = await stack.http.post(IMPORT, headers=other_tenant, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["created"]["schemas"] == ["payload.Order.v1", "payload.Line.v1"]
    exported = json.loads(await export(stack, other_tenant))
    assert exported["schemas"] == sorted(bundle["schemas"], key=lambda s: s["ref"])
    assert exported["dependencies"]["schemas"] == ["payload.Line.v1", "payload.Order.v1"]
    r = await stack.http.get("/v1/audit", headers=other_tenant, params={"action": "schema.create"})
    assert sorted(e["target"] for e in r.json()["items"]) == ["payload.Line.v1", "payload.Order.v1"]
    # Named schemas are immutable: other content is a conflict, even with force.
    bundle["schemas"][1]["schema"] = {"type": "array"}
    r = await stack.http.post(IMPORT, headers=other_tenant, params={"force": "true"}, json=bundle)
    assert r.status_code == 409, r.text
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [
        ("/schemas/1/schema", "schema_ref_conflict")
    ]


async def test_pinned_named_schemas_round_trip(stack: Stack, other_tenant: dict[str, str]) -> None:
    """A version published against a named schema carries it pinned; the bundle carries
    the named schema too, and the round trip is byte-identical."""
    schema = {"type": "object", "required": ["id"]}
    r = await stack.http.put(
        "/v1/schemas/payload.Order.v1", headers=stack.auth(), json={"schema": schema}
    )
    assert r.status_code == 201, r.text
    typed = {
        "inputSchema": {"$ref": "schema:payload.Order.v1"},
        "steps": [{"id": "a", "type": "transform.assign", "assign": {"id": "payload.id"}}],
        "output": {"id": {"$expr": "vars.id"}},
    }
    await stack.publish("typed", typed)
    await heartbeat(stack)
    text = await export(stack, stack.auth())
    bundle = json.loads(text)
    assert bundle["schemas"] == [{"ref": "payload.Order.v1", "schema": schema}]
    assert bundle["dependencies"]["schemas"] == ["payload.Order.v1"]
    pinned = bundle["workflows"][0]["versions"][0]["definition"]["inputSchema"]
    assert "schema:payload.Order.v1" in pinned["$defs"]

    r = await stack.http.post(IMPORT, headers=other_tenant, content=text)
    assert r.status_code == 200, r.text
    assert r.json()["created"]["schemas"] == ["payload.Order.v1"]
    assert without_time(await export(stack, other_tenant)) == without_time(text)
    r = await stack.http.get("/v1/schemas/payload.Order.v1", headers=other_tenant)
    assert r.status_code == 200 and r.json()["schema"] == schema

    # The imported version validates its input with the pinned schema, and runs.
    r = await stack.http.post(
        "/v1/runs", headers=other_tenant, json={"definition": "typed", "input": {}}
    )
    assert r.status_code == 422, r.text
    r = await stack.http.post(
        "/v1/runs", headers=other_tenant, json={"definition": "typed", "input": {"id": 7}}
    )
    assert r.status_code == 201, r.text
    assert await stack.result(r.json()) == {"output": {"id": 7}}


async def test_trigger_switches_and_deleted_keys(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    """A trigger an operator turned off stays off in the target (its schedule paused);
    importing a key that was deleted re-creates it, its versions numbering on."""
    h = stack.auth()
    await stack.publish("scheduled", SCHEDULED)
    r = await stack.http.post("/v1/definitions/scheduled/triggers/nightly/disable", headers=h)
    assert r.status_code == 200, r.text
    await heartbeat(stack)
    text = await export(stack, h, "scheduled")
    bundle = json.loads(text)
    assert bundle["workflows"][0]["disabledTriggers"] == ["nightly"]

    r = await stack.http.post(IMPORT, headers=other_tenant, content=text)
    assert r.status_code == 200, r.text
    assert without_time(await export(stack, other_tenant)) == without_time(text)
    tenant = await _tenant_of(stack, other_tenant["Authorization"].split()[1])
    handle = stack.client.get_schedule_handle(schedule_id(tenant, "scheduled", "nightly"))
    assert (await handle.describe()).schedule.state.paused is True
    r = await stack.http.get("/v1/definitions/scheduled/triggers", headers=other_tenant)
    switches = {t["name"]: t["enabled"] for t in r.json()["items"]}
    assert switches == {"nightly": False, "inbound": True}

    # Force with the switch back on: the schedule runs again.
    bundle["workflows"][0]["disabledTriggers"] = []
    r = await stack.http.post(IMPORT, headers=other_tenant, params={"force": "true"}, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["updated"]["workflows"] == ["scheduled"]
    assert (await handle.describe()).schedule.state.paused is False

    # Deleted, then imported again: re-created, version 2 (the old version 1 stays).
    r = await stack.http.delete("/v1/definitions/scheduled", headers=other_tenant)
    assert r.status_code == 204, r.text
    r = await stack.http.get(EXPORT, headers=other_tenant)
    assert json.loads(r.text)["workflows"] == []  # deleted keys are not exported
    r = await stack.http.post(IMPORT, headers=other_tenant, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["created"]["workflows"] == ["scheduled"]
    assert r.json()["created"]["versions"] == [
        {"key": "scheduled", "version": 2, "bundleVersion": 1}
    ]
    r = await stack.http.get("/v1/definitions/scheduled", headers=other_tenant)
    assert r.status_code == 200 and r.json()["latestVersion"] == 2
    assert (await handle.describe()).schedule.state.paused is False
