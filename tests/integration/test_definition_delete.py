"""``DELETE /v1/definitions/{key}`` on the real stack: nothing starts runs of the key any
more (event and webhook triggers, Temporal Schedules, the API), runs in flight finish on
their pinned version, the versions stay readable, and a re-created key numbers on."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.service import RPCError, RPCStatusCode

from app.schedules import schedule_id
from tests.integration.conftest import Stack, until
from tests.integration.test_control_flow import run_failing
from tests.integration.test_events import event_type, send, waiting
from tests.integration.test_hooks import GH_SECRET, ON_HOOK, github_signed, hook_ids, put_secret
from tests.integration.test_trigger_enablement import CREATED, runs, settled

DOOMED = {
    "triggers": [
        {"name": "on-created", "event": CREATED},
        {"name": "nightly", "schedule": {"cron": "0 2 * * *"}},
        ON_HOOK["triggers"][1],  # the github-signed webhook
    ],
    "steps": [
        {
            "id": "created",
            "type": "event.wait",
            "event": CREATED,
            "correlationKey": "payload.orderId",
            "output": "created",
        },
        {"id": "done", "type": "transform.assign", "assign": {"v": "'pinned'"}},
    ],
}


async def test_delete_stops_every_start_keeps_history_and_recreates(stack: Stack) -> None:
    key = "doomed"
    await event_type(stack, CREATED, correlation={"paths": ["/payload/orderId"]})
    await put_secret(stack, "gh-secret", GH_SECRET)
    assert await stack.publish(key, DOOMED) == 1
    hook = (await hook_ids(stack, key))["github"]
    schedule = stack.client.get_schedule_handle(schedule_id(stack.tenant, key, "nightly"))
    await schedule.describe()  # exists
    in_flight = await stack.start(key, {"orderId": "d-1"})
    await until(lambda: waiting(stack, in_flight["id"]))

    # Admin only.
    r = await stack.http.delete(f"/v1/definitions/{key}", headers=stack.auth("publisher"))
    assert r.status_code == 403
    r = await stack.http.delete(f"/v1/definitions/{key}", headers=stack.auth())
    assert r.status_code == 204, r.text

    # Every reader: 410 with a code (404 for keys that never existed).
    for method, path in [
        ("GET", f"/v1/definitions/{key}"),
        ("POST", f"/v1/definitions/{key}/publish"),
        ("POST", f"/v1/definitions/{key}/validate"),
        ("POST", f"/v1/definitions/{key}/pause"),
        ("GET", f"/v1/definitions/{key}/schedules"),
        ("GET", f"/v1/definitions/{key}/hooks"),
        ("GET", f"/v1/definitions/{key}/triggers"),
        ("POST", f"/v1/definitions/{key}/triggers/on-created/disable"),
    ]:
        r = await stack.http.request(method, path, headers=stack.auth())
        assert r.status_code == 410, (path, r.text)
        assert r.json()["code"] == "definition_deleted" and r.json()["hint"]
    r = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={"definition": key, "input": {"orderId": "x"}}
    )
    assert r.status_code == 410 and r.json()["code"] == "definition_deleted", r.text
    r = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={"definition": key, "version": 1, "input": {}}
    )
    assert r.status_code == 410, r.text
    r = await stack.http.get("/v1/definitions", headers=stack.auth())
    assert key not in [d["key"] for d in r.json()["items"]]
    r = await stack.http.delete("/v1/definitions/never-was", headers=stack.auth())
    assert r.status_code == 404 and r.json()["code"] == "definition_not_found"

    # Its versions stay readable for the history of its runs.
    r = await stack.http.get(f"/v1/definitions/{key}/versions", headers=stack.auth())
    assert r.status_code == 200 and [v["version"] for v in r.json()] == [1]
    r = await stack.http.get(f"/v1/definitions/{key}/versions/1", headers=stack.auth())
    assert r.status_code == 200 and r.json()["definition"]["steps"][1]["id"] == "done"

    # Triggers: the schedule is gone from Temporal, the hook URL is unknown, and a
    # matching event starts nothing, yet still reaches the run in flight, which
    # finishes on its pinned version.
    with pytest.raises(RPCError) as err:
        await schedule.describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    body = json.dumps({"number": 1}).encode()
    r = await stack.http.post(
        f"/v1/hooks/{hook}",
        content=body,
        headers=github_signed(body, "gh-1"),
    )
    assert r.status_code == 404 and r.json()["code"] == "hook_not_found"
    await send(stack, CREATED, {"orderId": "d-1"}, id="d-evt")
    view = await until(lambda: settled(stack, "d-evt"))
    assert [(d["kind"], d["runId"]) for d in view["deliveries"]] == [("wait", in_flight["id"])]
    result = await asyncio.wait_for(stack.result(in_flight), 30)
    assert result["output"]["v"] == "pinned"
    view2 = await stack.run_view(in_flight["id"])
    assert (view2["definition"], view2["version"]) == (key, 1)
    assert [r["id"] for r in await runs(stack, key)] == [in_flight["id"]]

    # Repeating the DELETE repeats the schedule removal: 204 again, audited once.
    r = await stack.http.delete(f"/v1/definitions/{key}", headers=stack.auth())
    assert r.status_code == 204
    r = await stack.http.get("/v1/audit", headers=stack.auth())
    deletes = [e for e in r.json()["items"] if e["action"] == "definition.delete"]
    assert [(e["target"], e["details"]) for e in deletes] == [(key, {"latestVersion": 1})]

    # Re-created: a new draft with no published version; numbers continue (never reused).
    r = await stack.http.put(
        f"/v1/definitions/{key}",
        headers=stack.auth(),
        json={"name": key, "definition": DOOMED},
    )
    assert r.status_code == 201, r.text
    assert r.json()["latestVersion"] is None and r.json()["paused"] is False
    r = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={"definition": key, "input": {}}
    )
    assert r.status_code == 404 and r.json()["code"] == "definition_not_published"
    r = await stack.http.post(f"/v1/definitions/{key}/publish", headers=stack.auth())
    assert r.status_code == 201 and r.json()["version"] == 2, r.text
    try:
        await schedule.describe()  # the schedule is back with the trigger
        assert (await hook_ids(stack, key))["github"] != hook  # a new, unguessable URL
        r = await stack.http.get(f"/v1/definitions/{key}/versions", headers=stack.auth())
        assert [v["version"] for v in r.json()] == [2, 1]
        run = await stack.start(key, {"orderId": "d-2"})
        assert (await stack.run_view(run["id"]))["version"] == 2
        await stack.client.get_workflow_handle(run["workflowId"]).terminate("test over")
    finally:
        r = await stack.http.delete(f"/v1/definitions/{key}", headers=stack.auth())
        assert r.status_code == 204


async def test_a_deleted_definition_starts_no_child_runs(stack: Stack) -> None:
    await stack.publish("kid", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]})
    r = await stack.http.delete("/v1/definitions/kid", headers=stack.auth())
    assert r.status_code == 204
    call = {"id": "call", "type": "control.callWorkflow", "definition": "kid"}
    for step in (call, {**call, "version": 1}):  # neither its latest nor a pinned version
        view = await run_failing(stack, "parent-of-kid", {"steps": [step]})
        assert view["error"]["type"] == "DefinitionNotFound", view["error"]


async def test_another_tenant_can_neither_switch_nor_delete(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    await stack.publish("mine", {**DOOMED, "triggers": DOOMED["triggers"][:1]})
    theirs = other_tenant
    for method, path in [
        ("DELETE", "/v1/definitions/mine"),
        ("GET", "/v1/definitions/mine/triggers"),
        ("POST", "/v1/definitions/mine/triggers/on-created/disable"),
    ]:
        r = await stack.http.request(method, path, headers=theirs)
        assert r.status_code == 404 and r.json()["code"] == "definition_not_found", r.text
    r = await stack.http.get("/v1/definitions/mine/triggers", headers=stack.auth())
    assert r.json()["items"][0]["enabled"] is True
    assert (await stack.http.get("/v1/definitions/mine", headers=stack.auth())).status_code == 200
