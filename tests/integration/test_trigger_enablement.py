"""Per-trigger enablement on the real stack: each kind (event, webhook, schedule) turned
off and on by name, next to the definition-wide pause, kept across republishing,
audited; and what becomes of events that arrive while a trigger is off."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import update

from app.events.dispatcher import Dispatcher
from app.schedules import schedule_id
from projections.models import Event
from tests.integration.conftest import Stack, until
from tests.integration.test_events import event_type, event_view, send, waiting
from tests.integration.test_hooks import ON_HOOK, inbox_rows, run_count, setup, signed
from tests.integration.test_schedules import _delete, schedules_of

CREATED = "order.created"

ON_ORDER = {
    "triggers": [
        {"name": "big", "event": CREATED, "filter": "event.payload.amount > 10"},
        {"event": CREATED, "filter": "event.payload.amount > 1000"},  # unnamed
    ],
    "steps": [{"id": "t", "type": "transform.assign", "assign": {"o": "payload.payload.orderId"}}],
}

WAIT_FOR_CREATED = {
    "steps": [
        {
            "id": "created",
            "type": "event.wait",
            "event": CREATED,
            "correlationKey": "payload.orderId",
            "output": "created",
        }
    ]
}


async def switch(stack: Stack, key: str, name: str, on: bool, role: str = "publisher") -> Any:
    verb = "enable" if on else "disable"
    return await stack.http.post(
        f"/v1/definitions/{key}/triggers/{name}/{verb}", headers=stack.auth(role)
    )


async def triggers_of(stack: Stack, key: str) -> dict[str, Any]:
    r = await stack.http.get(f"/v1/definitions/{key}/triggers", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def settled(stack: Stack, event_id: str) -> dict[str, Any] | None:
    view = await event_view(stack, event_id)
    pending = any(d["status"] == "PENDING" for d in view["deliveries"])
    return view if view["status"] == "ROUTED" and not pending else None


async def runs(stack: Stack, key: str) -> list[dict[str, Any]]:
    r = await stack.http.get(f"/v1/runs?definition={key}", headers=stack.auth())
    return list(r.json()["items"])


async def test_event_trigger_off_stores_the_event_starts_nothing_and_never_replays(
    stack: Stack,
) -> None:
    await event_type(stack, CREATED, correlation={"paths": ["/payload/orderId"]})
    await stack.publish("on-order", ON_ORDER)
    await stack.publish("wait-created", WAIT_FOR_CREATED)
    waiter = await stack.start("wait-created", {"orderId": "o-1"})
    await until(lambda: waiting(stack, waiter["id"]))

    listing = await triggers_of(stack, "on-order")
    assert listing["paused"] is False and listing["version"] == 1
    assert [(t["name"], t["kind"], t["enabled"], t["active"]) for t in listing["items"]] == [
        ("big", "event", True, True),
        (None, "event", True, True),
    ]

    # Only publishers (and admins) switch triggers; an unknown name is a 404 with a hint.
    assert (await switch(stack, "on-order", "big", False, role="operator")).status_code == 403
    r = await switch(stack, "on-order", "nope", False)
    assert r.status_code == 404 and r.json()["code"] == "trigger_not_found", r.text
    r = await switch(stack, "no-such-def", "big", False)
    assert r.status_code == 404 and r.json()["code"] == "definition_not_found"

    r = await switch(stack, "on-order", "big", False)
    assert r.status_code == 200, r.text
    [big, _] = r.json()["items"]
    assert big["enabled"] is False and big["active"] is False and big["disabledBy"]
    assert (await switch(stack, "on-order", "big", False)).status_code == 200  # idempotent

    # An event that matches the disabled trigger: accepted (202) and stored as always,
    # delivered to the run waiting for it, and its routing says why no run started.
    receipt = await send(stack, CREATED, {"orderId": "o-1", "amount": 50}, id="e-off")
    assert receipt["duplicate"] is False
    view = await until(lambda: settled(stack, "e-off"))
    by_kind = {d["kind"]: d for d in view["deliveries"]}
    assert by_kind["trigger"]["status"] == "DISABLED"
    assert by_kind["trigger"]["definition"] == "on-order"
    assert "trigger 'big' of definition 'on-order' is disabled" in by_kind["trigger"]["reason"]
    assert "not replayed" in by_kind["trigger"]["reason"]
    assert by_kind["wait"]["runId"] == waiter["id"]
    result = await asyncio.wait_for(stack.result(waiter), 30)
    assert result["output"]["created"]["id"] == "e-off"
    assert view["payload"] == {"orderId": "o-1", "amount": 50}
    assert await runs(stack, "on-order") == []

    # The other (unnamed, enabled) trigger of the same definition still starts runs.
    await send(stack, CREATED, {"orderId": "o-2", "amount": 5000}, id="e-huge")
    view = await until(lambda: settled(stack, "e-huge"))
    [started] = [d for d in view["deliveries"] if d["kind"] == "trigger"]
    assert started["status"] == "STARTED"

    # Republishing keeps it off, and says so.
    changed = {**ON_ORDER, "description": "v2"}
    r = await stack.http.put(
        "/v1/definitions/on-order", headers=stack.auth(), json={"name": "x", "definition": changed}
    )
    r = await stack.http.post("/v1/definitions/on-order/publish", headers=stack.auth())
    assert r.status_code == 201, r.text
    assert [(w["code"], w["path"]) for w in r.json()["warnings"]] == [
        ("trigger_disabled", "/triggers/0")
    ]
    assert (await triggers_of(stack, "on-order"))["items"][0]["enabled"] is False

    # Turned back on: the event that came while it was off is not replayed, even when
    # the inbox routes it again; new events start runs.
    r = await switch(stack, "on-order", "big", True)
    assert r.status_code == 200 and r.json()["items"][0]["enabled"] is True
    async with stack.sessions.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.tenant == stack.tenant, Event.event_id == "e-off")
            .values(status="PENDING", next_attempt_at=Event.received_at)
        )
    await Dispatcher(stack.sessions, stack.client, stack.settings).dispatch_once()
    view = await until(lambda: settled(stack, "e-off"))
    assert [d["status"] for d in view["deliveries"] if d["kind"] == "trigger"] == ["DISABLED"]
    await send(stack, CREATED, {"orderId": "o-3", "amount": 50}, id="e-on")
    view = await until(lambda: settled(stack, "e-on"))
    [started] = [d for d in view["deliveries"] if d["kind"] == "trigger"]
    assert started["status"] == "STARTED"
    await asyncio.sleep(0.5)
    assert len(await runs(stack, "on-order")) == 2  # e-huge and e-on, never e-off

    # The definition's pause is the other switch: the routing says which one was off.
    await stack.http.post("/v1/definitions/on-order/pause", headers=stack.auth("publisher"))
    listing = await triggers_of(stack, "on-order")
    assert listing["paused"] is True
    assert [(t["enabled"], t["active"]) for t in listing["items"]] == [(True, False)] * 2
    await send(stack, CREATED, {"orderId": "o-4", "amount": 50}, id="e-paused")
    view = await until(lambda: settled(stack, "e-paused"))
    [off] = [d for d in view["deliveries"] if d["kind"] == "trigger"]
    assert off["status"] == "DISABLED" and "'on-order' is paused" in off["reason"]

    r = await stack.http.get("/v1/audit", headers=stack.auth())
    actions = [(e["action"], e["target"], e["details"]) for e in r.json()["items"]]
    assert ("trigger.enable", "on-order", {"trigger": "big"}) in actions
    # Disabled twice, recorded once (the second changed nothing).
    assert actions.count(("trigger.disable", "on-order", {"trigger": "big"})) == 1


async def test_a_disabled_name_stays_off_while_a_version_lacks_it(stack: Stack) -> None:
    await event_type(stack, CREATED, correlation={"paths": ["/payload/orderId"]})
    await stack.publish("on-order-2", ON_ORDER)
    assert (await switch(stack, "on-order-2", "big", False)).status_code == 200
    await stack.publish("on-order-2", {**ON_ORDER, "triggers": ON_ORDER["triggers"][1:]})
    listing = await triggers_of(stack, "on-order-2")
    assert [(t["name"], t["inLatestVersion"], t["enabled"]) for t in listing["items"]] == [
        (None, True, True),
        ("big", False, False),
    ]
    await stack.publish("on-order-2", ON_ORDER)  # brought back: still off
    assert (await triggers_of(stack, "on-order-2"))["items"][0]["enabled"] is False
    await send(stack, CREATED, {"orderId": "o-9", "amount": 50}, id="e-back")
    view = await until(lambda: settled(stack, "e-back"))
    assert [d["status"] for d in view["deliveries"] if d["kind"] == "trigger"] == ["DISABLED"]


async def test_webhook_trigger_off_refuses_calls_and_stores_nothing(stack: Stack) -> None:
    ids = await setup(stack, "hook-switch")
    hook = ids["payments"]
    assert (await switch(stack, "hook-switch", "payments", False)).status_code == 200
    r = await stack.http.get("/v1/definitions/hook-switch/hooks", headers=stack.auth("operator"))
    assert {h["trigger"]: h["enabled"] for h in r.json()["items"]} == {
        "github": True,
        "payments": False,
    }
    body = json.dumps({"number": 7}).encode()
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=signed(body, "d1"))
    assert r.status_code == 409 and r.json()["code"] == "trigger_disabled", r.text
    assert await inbox_rows(stack, hook) == 0
    # Republished: the hook keeps its id and stays off.
    await stack.publish("hook-switch", {**ON_HOOK, "description": "v2"})
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=signed(body, "d1"))
    assert r.status_code == 409 and r.json()["code"] == "trigger_disabled", r.text
    # On again: the sender's retry of the same delivery is accepted and starts the run.
    assert (await switch(stack, "hook-switch", "payments", True)).status_code == 200
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=signed(body, "d1"))
    assert r.status_code == 202, r.text

    async def one() -> bool:
        return await run_count(stack, "hook-switch") == 1

    await until(one)


SCHEDULED = {
    "steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "1"}}],
    "triggers": [
        {"name": "a", "schedule": {"interval": "P30D"}},
        {"name": "b", "schedule": {"interval": "P30D"}},
    ],
}


async def test_schedule_trigger_off_pauses_its_schedule_only(stack: Stack) -> None:
    key = "sched-switch"
    handles = {n: stack.client.get_schedule_handle(schedule_id(stack.tenant, key, n)) for n in "ab"}

    async def paused() -> dict[str, tuple[bool, str]]:
        found = {}
        for name, handle in handles.items():
            state = (await handle.describe()).schedule.state
            found[name] = (state.paused, state.note or "")
        return found

    await stack.publish(key, SCHEDULED)
    try:
        assert (await switch(stack, key, "a", False)).status_code == 200
        assert await paused() == {
            "a": (True, "trigger disabled"),
            "b": (False, "managed by Tempoflow"),
        }
        items = {i["trigger"]: i for i in await schedules_of(stack, key)}
        assert (items["a"]["enabled"], items["a"]["paused"]) == (False, True)
        assert (items["b"]["enabled"], items["b"]["paused"]) == (True, False)

        # The definition's pause pauses both; resuming leaves the disabled one paused.
        await stack.http.post(f"/v1/definitions/{key}/pause", headers=stack.auth())
        assert {n: p for n, (p, _) in (await paused()).items()} == {"a": True, "b": True}
        await stack.http.post(f"/v1/definitions/{key}/resume", headers=stack.auth())
        assert {n: p for n, (p, _) in (await paused()).items()} == {"a": True, "b": False}

        # Republishing rebuilds the schedules: the disabled one stays paused.
        await stack.publish(key, {**SCHEDULED, "description": "v2"})
        assert {n: p for n, (p, _) in (await paused()).items()} == {"a": True, "b": False}

        assert (await switch(stack, key, "a", True)).status_code == 200
        assert {n: p for n, (p, _) in (await paused()).items()} == {"a": False, "b": False}
    finally:
        for name in handles:
            await _delete(stack, schedule_id(stack.tenant, key, name))
