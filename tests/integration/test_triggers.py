"""Definition triggers: a matching event starts exactly one run per (definition, event)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from projections.models import Event
from tests.integration.conftest import Stack, until
from tests.integration.test_events import event_type, send

CREATED = "order.created"

ON_CREATED = {
    "triggers": [{"event": CREATED, "filter": "event.payload.amount > 10"}],
    "steps": [
        {"id": "t", "type": "transform.assign", "assign": {"order": "payload.payload.orderId"}}
    ],
}


async def trigger_runs(stack: Stack, event_id: str) -> list[dict[str, Any]]:
    """The event's trigger deliveries, once settled (a delivery is PENDING from routing
    until the run's start is confirmed)."""
    r = await stack.http.get(f"/v1/events/{event_id}", headers=stack.auth("operator"))
    found = [d for d in r.json()["deliveries"] if d["kind"] == "trigger"]
    return [] if any(d["status"] == "PENDING" for d in found) else found


async def routed(stack: Stack, event_id: str) -> bool:
    r = await stack.http.get(f"/v1/events/{event_id}", headers=stack.auth("operator"))
    return bool(r.json()["status"] == "ROUTED")


async def test_matching_event_starts_one_run_even_when_routed_again(stack: Stack) -> None:
    await event_type(stack, CREATED)
    await stack.publish("on-created", ON_CREATED)
    await send(stack, CREATED, {"orderId": "t-1", "amount": 20}, id="c-1")
    [started] = await until(lambda: trigger_runs(stack, "c-1"))
    assert started["status"] == "STARTED" and started["definition"] == "on-created"
    run = {"workflowId": started["workflowId"]}
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["order"] == "t-1"
    view = await stack.run_view(started["runId"])
    assert view["input"]["id"] == "c-1" and view["input"]["name"] == CREATED

    # Route the same event again (as after a dispatcher crash): still one run.
    async with stack.sessions.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.tenant == stack.tenant, Event.event_id == "c-1")
            .values(status="PENDING", next_attempt_at=Event.received_at)
        )
    from app.events.dispatcher import Dispatcher

    await Dispatcher(stack.sessions, stack.client, stack.settings).dispatch_once()
    await until(lambda: routed(stack, "c-1"))
    r = await stack.http.get("/v1/runs?definition=on-created", headers=stack.auth())
    assert [x["id"] for x in r.json()["items"]] == [started["runId"]]


async def test_filter_and_pause_stop_triggers(stack: Stack) -> None:
    await event_type(stack, CREATED)
    await stack.publish("on-created", ON_CREATED)
    await send(stack, CREATED, {"orderId": "small", "amount": 5}, id="c-small")
    await until(lambda: routed(stack, "c-small"))
    assert await trigger_runs(stack, "c-small") == []
    r = await stack.http.post("/v1/definitions/on-created/pause", headers=stack.auth("publisher"))
    assert r.status_code == 200 and r.json()["paused"] is True
    await send(stack, CREATED, {"orderId": "paused", "amount": 50}, id="c-paused")
    await until(lambda: routed(stack, "c-paused"))
    # Stored and routed, but no run: the routing says why (and it is never replayed).
    [off] = await trigger_runs(stack, "c-paused")
    assert off["status"] == "DISABLED" and "'on-created' is paused" in off["reason"]
    r = await stack.http.post("/v1/definitions/on-created/resume", headers=stack.auth("publisher"))
    assert r.json()["paused"] is False
    await send(stack, CREATED, {"orderId": "again", "amount": 50}, id="c-again")
    [started] = await until(lambda: trigger_runs(stack, "c-again"))
    assert started["status"] == "STARTED"
    r = await stack.http.get("/v1/runs?definition=on-created", headers=stack.auth())
    await asyncio.wait_for(stack.result({"workflowId": started["workflowId"]}), 30)


async def test_trigger_filter_is_checked_at_publish(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/bad-trigger",
        headers=stack.auth(),
        json={
            "name": "bad",
            "definition": {**ON_CREATED, "triggers": [{"event": CREATED, "filter": "vars.x"}]},
        },
    )
    assert r.status_code in (200, 201)
    r = await stack.http.post("/v1/definitions/bad-trigger/publish", headers=stack.auth())
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "/triggers/0/filter"
