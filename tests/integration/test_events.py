"""Events end to end on the real servers: ingress, correlation, race-free waits, routing
record, continue-as-new and tenant isolation."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from projections import routing
from projections.models import Event, EventDeliveryRow, WaitRow
from projections.routing import CLOCK_GRACE
from tempoflow.records import WaitRecord
from temporal_workflows import events as inbox_module
from tests.integration.conftest import Stack, until

PAID = "order.paid"


async def event_type(stack: Stack, name: str = PAID, **body: Any) -> dict[str, Any]:
    body.setdefault("correlation", {"paths": ["/payload/orderId"]})
    r = await stack.http.put(f"/v1/event-types/{name}", headers=stack.auth("publisher"), json=body)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def send(stack: Stack, name: str = PAID, payload: Any = None, **extra: Any) -> dict[str, Any]:
    r = await stack.http.post(
        "/v1/events", headers=stack.auth("ingest"), json={"name": name, "payload": payload, **extra}
    )
    assert r.status_code in (200, 202), r.text
    return dict(r.json())


async def event_view(stack: Stack, event_id: str) -> dict[str, Any]:
    r = await stack.http.get(f"/v1/events/{event_id}", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def waiting(stack: Stack, run_id: str, count: int = 1) -> bool:
    """The run has ``count`` open waits indexed (so routing will find them)."""
    async with stack.sessions() as session:
        rows = (
            await session.execute(
                select(WaitRow).where(WaitRow.run_id == run_id, WaitRow.status == "WAITING")
            )
        ).scalars()
        return len(list(rows)) >= count


def wait_for_paid(**step: Any) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "paid",
                "type": "event.wait",
                "event": PAID,
                "correlationKey": "payload.orderId",
                "output": "paid",
                **step,
            },
            {
                "id": "after",
                "type": "transform.assign",
                "assign": {"amount": "vars.paid.payload.amount"},
            },
        ]
    }


async def test_event_after_wait_resumes_the_run(stack: Stack) -> None:
    await event_type(stack)
    await stack.publish("pay", wait_for_paid())
    run = await stack.start("pay", {"orderId": "o-1"})
    await until(lambda: waiting(stack, run["id"]))
    assert (await stack.run_view(run["id"]))["status"] == "WAITING"
    receipt = await send(stack, payload={"orderId": "o-1", "amount": 42}, id="evt-1")
    assert receipt["correlationKey"] == "o-1" and receipt["correlated"] is True
    result = await asyncio.wait_for(stack.result(run), 30)
    out = result["output"]
    assert out["amount"] == 42
    assert out["paid"]["id"] == "evt-1" and out["paid"]["correlationKey"] == "o-1"
    await stack.record_history(run, "event_wait")

    async def routed() -> dict[str, Any] | None:
        view = await event_view(stack, "evt-1")
        return view if view["status"] == "ROUTED" and view["deliveries"] else None

    view = await until(routed)
    [delivery] = view["deliveries"]
    assert delivery["runId"] == run["id"] and delivery["kind"] == "wait"
    assert delivery["status"] == "APPLIED" and delivery["stepPath"] == "/steps/0"
    steps = await stack.steps(run["id"])
    assert steps[0]["stepId"] == "paid" and steps[0]["status"] == "SUCCEEDED"
    r = await stack.http.get(f"/v1/runs/{run['id']}/waits", headers=stack.auth("operator"))
    [wait] = r.json()["items"]
    assert (wait["status"], wait["eventId"], wait["correlationKey"]) == ("MATCHED", "evt-1", "o-1")
    assert wait["eventNames"] == [PAID] and wait["stepPath"] == "/steps/0"


async def test_event_before_wait_is_taken_from_the_buffer(stack: Stack) -> None:
    await event_type(stack, bufferTtl="PT1H")
    await send(stack, payload={"orderId": "early", "amount": 7}, id="evt-early")
    await stack.publish("pay", wait_for_paid())
    run = await stack.start("pay", {"orderId": "early"})
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "evt-early"
    view = await until(lambda: _applied(stack, "evt-early"))
    assert [d["runId"] for d in view["deliveries"]] == [run["id"]]


async def _applied(stack: Stack, event_id: str) -> dict[str, Any] | None:
    view = await event_view(stack, event_id)
    return view if any(d["status"] == "APPLIED" for d in view["deliveries"]) else None


async def test_without_buffer_an_earlier_event_is_not_taken(stack: Stack) -> None:
    await event_type(stack, bufferTtl="PT0S")
    await send(stack, payload={"orderId": "gone", "amount": 1}, id="before")
    await until(lambda: _routed(stack, "before"))  # routed (to no one) before the wait
    await asyncio.sleep(CLOCK_GRACE.total_seconds() + 0.5)  # and not within the clock slack
    await stack.publish("pay", wait_for_paid(timeout="PT1S", onTimeout="continue"))
    run = await stack.start("pay", {"orderId": "gone"})
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"] is None


async def test_filter_skips_events_and_records_why(stack: Stack) -> None:
    await event_type(stack)
    await stack.publish("pay", wait_for_paid(filter="event.payload.amount > 100"))
    run = await stack.start("pay", {"orderId": "f-1"})
    await until(lambda: waiting(stack, run["id"]))
    await send(stack, payload={"orderId": "f-1", "amount": 50}, id="small")
    await send(stack, payload={"orderId": "f-1", "amount": 150}, id="large")
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "large"

    async def filtered() -> dict[str, Any] | None:
        view = await event_view(stack, "small")
        return (
            view if view["deliveries"] and view["deliveries"][0]["status"] == "FILTERED" else None
        )

    view = await until(filtered)
    assert view["deliveries"][0]["reason"] == "the wait's filter was false"


async def test_every_run_waiting_on_a_key_receives_the_event(stack: Stack) -> None:
    await event_type(stack)
    await stack.publish("pay", wait_for_paid())
    runs = [await stack.start("pay", {"orderId": "shared"}) for _ in range(3)]
    for run in runs:
        await until(lambda run=run: waiting(stack, run["id"]))
    await send(stack, payload={"orderId": "shared", "amount": 3}, id="fan-out")
    for run in runs:
        result = await asyncio.wait_for(stack.result(run), 30)
        assert result["output"]["paid"]["id"] == "fan-out"

    async def all_applied() -> dict[str, Any] | None:
        view = await event_view(stack, "fan-out")
        statuses = {d["runId"]: d["status"] for d in view["deliveries"]}
        return view if statuses == {r["id"]: "APPLIED" for r in runs} else None

    await until(all_applied)


async def test_concurrent_events_and_waits_lose_nothing_and_apply_once(stack: Stack) -> None:
    """Runs start while their events arrive, in random order, several per key: each run
    applies each of its key's events exactly once."""
    await event_type(stack, bufferTtl="PT1H")
    per_key = 3
    await stack.publish(
        "collect",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": f"[1..{per_key}]",
                    "steps": [
                        {
                            "id": "w",
                            "type": "event.wait",
                            "event": PAID,
                            "correlationKey": "payload.orderId",
                            "output": "got",
                        }
                    ],
                    "result": {"$expr": "vars.got.id"},
                    "output": "ids",
                }
            ]
        },
    )
    keys = [f"k{i}" for i in range(8)]
    events = {k: [f"{k}-e{j}" for j in range(per_key)] for k in keys}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}

    async def start(key: str) -> None:
        runs[key].append(await stack.start("collect", {"orderId": key}))

    async def post(key: str, event_id: str) -> None:
        await send(stack, payload={"orderId": key}, id=event_id)

    work = [start(k) for k in keys for _ in range(2)]
    work += [post(k, e) for k in keys for e in events[k]]
    random.Random(7).shuffle(work)
    await asyncio.gather(*work)
    for key in keys:
        for run in runs[key]:
            result = await asyncio.wait_for(stack.result(run), 60)
            assert sorted(result["output"]["ids"]) == events[key], (key, result)


async def test_duplicate_event_ids_are_stored_once(stack: Stack) -> None:
    await event_type(stack)
    body = {"name": PAID, "id": "dup-1", "payload": {"orderId": "d", "amount": 1}}

    async def post(payload: Any) -> Any:
        return await stack.http.post(
            "/v1/events", headers=stack.auth("ingest"), json={**body, "payload": payload}
        )

    first, second = await asyncio.gather(
        post({"orderId": "d", "amount": 1}), post({"orderId": "d", "amount": 2})
    )
    assert sorted([first.status_code, second.status_code]) == [200, 202]
    assert first.json()["receivedAt"] == second.json()["receivedAt"]
    assert {first.json()["duplicate"], second.json()["duplicate"]} == {True, False}
    r = await stack.http.post(
        "/v1/events:batch",
        headers=stack.auth("ingest"),
        json={"events": [body, {**body, "id": "dup-2"}, {**body, "id": "dup-2"}]},
    )
    assert r.status_code == 202, r.text
    assert [i["duplicate"] for i in r.json()["items"]] == [True, False, True]
    async with stack.sessions() as session:
        stored = (
            await session.execute(
                select(Event).where(Event.tenant == stack.tenant, Event.event_id.like("dup-%"))
            )
        ).scalars()
        assert sorted(e.event_id for e in stored) == ["dup-1", "dup-2"]


async def test_bad_events_are_refused_with_paths_and_nothing_is_stored(stack: Stack) -> None:
    await event_type(
        stack,
        schema={
            "type": "object",
            "required": ["orderId"],
            "properties": {"orderId": {"type": "string"}, "amount": {"type": "number"}},
        },
    )
    ingest = stack.auth("ingest")
    r = await stack.http.post(
        "/v1/events:batch",
        headers=ingest,
        json={
            "events": [
                {"name": PAID, "id": "ok-1", "payload": {"orderId": "a"}},
                {"name": PAID, "id": "bad-1", "payload": {"amount": "x"}},
                {"name": "no.such.type", "payload": {}},
            ]
        },
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "event_invalid"
    assert {(e["path"], e["code"]) for e in problem["errors"]} == {
        ("/events/1/payload", "payload.required"),
        ("/events/1/payload/amount", "payload.type"),
        ("/events/2/name", "event_type_unknown"),
    }
    r = await stack.http.get("/v1/events/ok-1", headers=ingest)
    assert r.status_code == 404  # all or nothing
    r = await stack.http.post(
        "/v1/events:batch",
        headers=ingest,
        json={"events": [{"name": PAID, "payload": {"orderId": str(i)}} for i in range(101)]},
    )
    assert r.status_code == 413 and r.json()["code"] == "batch_too_large"
    r = await stack.http.post(
        "/v1/events",
        headers=ingest,
        json={"name": PAID, "payload": {"orderId": "big", "blob": "x" * 70_000}},
    )
    assert r.status_code == 413 and r.json()["code"] == "event_too_large"
    r = await stack.http.post(
        "/v1/events",
        headers=ingest,
        json={"name": PAID, "payload": {"orderId": "a"}, "correlationKey": ""},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/correlationKey"
    r = await stack.http.post("/v1/events", headers=stack.auth("operator"), json={"name": PAID})
    assert r.status_code == 403


async def test_uncorrelated_events_are_kept_but_never_routed(stack: Stack) -> None:
    await event_type(stack, correlation={"expression": "payload.order.id"})
    await stack.publish("pay", wait_for_paid(timeout="PT2S", onTimeout="continue"))
    run = await stack.start("pay", {"orderId": "u-1"})
    await until(lambda: waiting(stack, run["id"]))
    receipt = await send(stack, payload={"orderId": "u-1"}, id="no-key")
    assert receipt["correlationKey"] is None and receipt["correlated"] is False
    derived = await send(stack, payload={"order": {"id": 5}}, id="derived")
    assert derived["correlationKey"] == "5"
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"] is None
    view = await until(lambda: _routed(stack, "no-key", "UNCORRELATED"))
    assert view["deliveries"] == []
    # The listing filter and the status field agree.
    r = await stack.http.get("/v1/events?status=UNCORRELATED", headers=stack.auth("operator"))
    items = r.json()["items"]
    assert [(e["id"], e["status"]) for e in items] == [("no-key", "UNCORRELATED")]
    await until(lambda: _routed(stack, "derived"))
    r = await stack.http.get("/v1/events?status=ROUTED", headers=stack.auth("operator"))
    assert [(e["id"], e["status"]) for e in r.json()["items"]] == [("derived", "ROUTED")]


async def _routed(stack: Stack, event_id: str, status: str = "ROUTED") -> dict[str, Any] | None:
    view = await event_view(stack, event_id)
    return view if view["status"] == status else None


async def test_keys_that_are_not_strings_or_numbers_are_refused(stack: Stack) -> None:
    """A boolean (or object, array) key is a producer bug: 422, never the key "1"."""
    await event_type(stack, correlation={"paths": ["/payload/orderId"]})
    ingest = stack.auth("ingest")
    for bad in (True, False, {"a": 1}, [1], ""):
        r = await stack.http.post(
            "/v1/events", headers=ingest, json={"name": PAID, "payload": {}, "correlationKey": bad}
        )
        assert r.status_code == 422, (bad, r.text)
        problem = r.json()
        assert problem["code"] == "event_invalid"
        assert [(e["path"], e["code"]) for e in problem["errors"]] == [
            ("/correlationKey", "correlation_key_invalid")
        ]
    # null means absent: the type derives the key.
    ok = await send(stack, payload={"orderId": 7}, correlationKey=None, id="null-key")
    assert ok["correlationKey"] == "7"
    # A derived key of the wrong type is refused at the path it came from.
    r = await stack.http.post(
        "/v1/events:batch",
        headers=ingest,
        json={
            "events": [
                {"name": PAID, "payload": {"orderId": "fine"}},
                {"name": PAID, "payload": {"orderId": True}},
            ]
        },
    )
    assert r.status_code == 422, r.text
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [
        ("/events/1/payload/orderId", "correlation_key_invalid")
    ]
    await event_type(stack, "order.flag", correlation={"expression": "payload.ok"})
    r = await stack.http.post(
        "/v1/events", headers=ingest, json={"name": "order.flag", "payload": {"ok": True}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/correlationKey", r.text
    r = await stack.http.get("/v1/events?correlationKey=1", headers=stack.auth("operator"))
    assert r.json()["items"] == []


async def test_applied_events_survive_continue_as_new(stack: Stack) -> None:
    """Twenty-five waits on one key with all events buffered: every registration returns the
    whole buffer, so only the remembered ids (carried across continue-as-new) keep each
    event from being applied twice."""
    await event_type(stack, bufferTtl="PT1H")
    count = 25
    for i in range(count):
        await send(stack, payload={"orderId": "loop"}, id=f"loop-{i:02d}")
    await stack.publish(
        "loop",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": f"[1..{count}]",
                    "steps": [
                        {
                            "id": "w",
                            "type": "event.wait",
                            "event": PAID,
                            "correlationKey": "'loop'",
                            "output": "got",
                        },
                        # An activity per iteration grows the history past the
                        # suggestion threshold of the test server (100 events).
                        {"id": "echo", "type": "action.call", "action": "test.echo"},
                    ],
                    "result": {"$expr": "vars.got.id"},
                    "output": "ids",
                }
            ]
        },
    )
    run = await stack.start("loop", {})
    result = await asyncio.wait_for(stack.result(run), 90)
    assert result["output"]["ids"] == [f"loop-{i:02d}" for i in range(count)]
    handle = stack.client.get_workflow_handle(run["workflowId"])
    desc = await handle.describe()
    first = stack.client.get_workflow_handle(
        run["workflowId"], run_id=desc.raw_description.workflow_execution_info.first_run_id
    )
    assert desc.run_id != first.run_id, "the run never continued as new"


async def test_events_are_isolated_by_tenant(stack: Stack, other_tenant: Any) -> None:
    await event_type(stack)
    await stack.publish("pay", wait_for_paid(timeout="PT2S", onTimeout="continue"))
    run = await stack.start("pay", {"orderId": "iso"})
    await until(lambda: waiting(stack, run["id"]))
    other = other_tenant
    r = await stack.http.put(
        f"/v1/event-types/{PAID}",
        headers=other,
        json={"correlation": {"paths": ["/payload/orderId"]}},
    )
    assert r.status_code == 201, r.text
    r = await stack.http.post(
        "/v1/events",
        headers=other,
        json={"name": PAID, "id": "iso-1", "payload": {"orderId": "iso"}},
    )
    assert r.status_code == 202
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"] is None  # another tenant's event never reaches the run
    r = await stack.http.get("/v1/events/iso-1", headers=stack.auth("operator"))
    assert r.status_code == 404
    r = await stack.http.get("/v1/events/iso-1", headers=other)
    assert r.status_code == 200 and r.json()["deliveries"] == []


async def test_routing_records_closed_runs_and_expired_waits(stack: Stack) -> None:
    """A run terminated while waiting leaves its wait indexed: routing records why the
    event did not reach it (the wait had expired, or the run is closed)."""
    await event_type(stack)
    await stack.publish("pay", wait_for_paid())
    await stack.publish("pay-soon", wait_for_paid(timeout="PT1S"))
    closed = await stack.start("pay", {"orderId": "gone-1"})
    expired = await stack.start("pay-soon", {"orderId": "gone-2"})
    for run in (closed, expired):
        await until(lambda run=run: waiting(stack, run["id"]))
        await stack.client.get_workflow_handle(run["workflowId"]).terminate("test")
    await asyncio.sleep(1.2)  # past the second wait's timeout
    await send(stack, payload={"orderId": "gone-1"}, id="to-closed")
    await send(stack, payload={"orderId": "gone-2"}, id="to-expired")
    view = await until(lambda: _routed(stack, "to-closed"))
    assert [(d["runId"], d["status"]) for d in view["deliveries"]] == [(closed["id"], "RUN_CLOSED")]
    view = await until(lambda: _routed(stack, "to-expired"))
    assert [(d["runId"], d["status"], d["reason"]) for d in view["deliveries"]] == [
        (expired["id"], "EXPIRED", "the wait had timed out")
    ]


async def test_registration_takes_events_routed_after_the_wait_began(stack: Stack) -> None:
    """Without a buffer (TTL 0), an event whose transaction began before the wait but
    whose routing was decided after the wait began still reaches the wait: the router
    may have looked before the wait was indexed."""
    await event_type(stack, bufferTtl="PT0S")
    since = datetime.now(UTC)
    before = since - timedelta(seconds=5)
    rows = {
        "routed-long-before": since - timedelta(minutes=1),
        "routed-at-start": since,
        "routed-within-clock-grace": since - timedelta(seconds=2),
        "not-routed-yet": None,  # its routing will see the wait
    }
    async with stack.sessions.begin() as session:
        for event_id, routed_at in rows.items():
            session.add(
                Event(
                    tenant=stack.tenant,
                    event_id=event_id,
                    name=PAID,
                    correlation_key="race",
                    payload={},
                    received_at=before,
                    status="ROUTED" if routed_at else "PENDING",
                    routed_at=routed_at,
                    next_attempt_at=since + timedelta(hours=1),  # keep the dispatcher off
                )
            )
    wait = WaitRecord(
        run_id="r-race",
        seq=1,
        tenant=stack.tenant,
        workflow_id="wf-race",
        step_path="/steps/0",
        event_names=[PAID],
        correlation_key="race",
        since=since,
    )
    async with stack.sessions.begin() as session:
        events = await routing.register_wait(session, wait, limit=10)
    assert sorted(e.event_id for e in events) == ["routed-at-start", "routed-within-clock-grace"]


async def test_event_types_are_managed_and_checked(stack: Stack) -> None:
    url = f"/v1/event-types/{PAID}"
    body = {"description": "paid", "correlation": {"expression": "payload.orderId"}}
    r = await stack.http.put(url, headers=stack.auth("publisher"), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["bufferTtlSeconds"] == 3600  # the documented default
    r = await stack.http.put(
        url, headers=stack.auth("publisher"), json={**body, "bufferTtl": "PT5M"}
    )
    assert r.status_code == 200 and r.json()["bufferTtlSeconds"] == 300
    r = await stack.http.put(
        "/v1/event-types/bad",
        headers=stack.auth("publisher"),
        json={
            "schema": {"type": "nope"},
            "correlation": {"expression": "paylod.x", "paths": ["payload/x"]},
            "bufferTtl": "P30D",
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "event_type_invalid"
    assert {e["path"] for e in r.json()["errors"]} == {
        "/schema/type",
        "/correlation",
        "/correlation/expression",
        "/correlation/paths/0",
        "/bufferTtl",
    }
    r = await stack.http.put(url, headers=stack.auth("ingest"), json=body)
    assert r.status_code == 403
    r = await stack.http.get("/v1/event-types", headers=stack.auth("operator"))
    assert [t["name"] for t in r.json()["items"]] == [PAID]
    r = await stack.http.get(url, headers=stack.auth("operator"))
    assert r.json()["correlation"] == {"expression": "payload.orderId"}
    assert (await stack.http.delete(url, headers=stack.auth("publisher"))).status_code == 204
    assert (await stack.http.get(url, headers=stack.auth("operator"))).status_code == 404
    assert (await stack.http.delete(url, headers=stack.auth("publisher"))).status_code == 404
    r = await stack.http.post("/v1/events", headers=stack.auth("ingest"), json={"name": PAID})
    assert r.status_code == 422  # the type is gone


async def test_events_are_listed_newest_first_with_filters_and_pages(stack: Stack) -> None:
    await event_type(stack)
    for i in range(5):
        await send(stack, payload={"orderId": "a" if i % 2 else "b"}, id=f"l-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        query = "/v1/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await stack.http.get(query, headers=stack.auth("operator"))
        assert r.status_code == 200, r.text
        seen += [e["id"] for e in r.json()["items"]]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"l-{i}" for i in reversed(range(5))]
    r = await stack.http.get("/v1/events?correlationKey=a", headers=stack.auth("operator"))
    assert [e["id"] for e in r.json()["items"]] == ["l-3", "l-1"]
    r = await stack.http.get(f"/v1/events?name={PAID}&status=ROUTED", headers=stack.auth())
    assert all(e["status"] == "ROUTED" for e in r.json()["items"])


async def test_expensive_correlation_does_not_stall_other_requests(stack: Stack) -> None:
    """Correlation expressions run off the event loop: /healthz answers promptly while a
    batch whose every event costs ~0.1 s of expression work is being accepted."""
    await event_type(stack, correlation={"expression": "$string($sum([1..90000]) + payload.n)"})
    batch = {"events": [{"name": PAID, "payload": {"n": i}} for i in range(20)]}
    post = asyncio.create_task(
        stack.http.post("/v1/events:batch", headers=stack.auth("ingest"), json=batch)
    )
    loop = asyncio.get_running_loop()
    slowest = 0.0
    while not post.done():
        began = loop.time()  # a probe is due every 50 ms; how late is its answer?
        await asyncio.sleep(0.05)
        r = await stack.http.get("/healthz")
        assert r.status_code == 200
        slowest = max(slowest, loop.time() - began - 0.05)
    r = post.result()
    assert r.status_code == 202, r.text
    assert r.json()["items"][3]["correlationKey"] == str(4050045000 + 3)
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the batch"


async def test_a_filtered_out_event_shows_filtered_while_the_run_waits(stack: Stack) -> None:
    """The run does nothing else after filtering the event out, yet its routing record says
    FILTERED (with the reason) within the documented delay."""
    await event_type(stack)
    await stack.publish("pay", wait_for_paid(filter="event.payload.amount > 100"))
    run = await stack.start("pay", {"orderId": "fv-1"})
    await until(lambda: waiting(stack, run["id"]))
    await send(stack, payload={"orderId": "fv-1", "amount": 5}, id="fv-small")

    async def filtered() -> dict[str, Any] | None:
        view = await event_view(stack, "fv-small")
        found = [d for d in view["deliveries"] if d["status"] == "FILTERED"]
        return found[0] if found else None

    delivery = await until(filtered)
    assert delivery["runId"] == run["id"] and "filter" in delivery["reason"]
    assert (await stack.run_view(run["id"]))["status"] == "WAITING"
    await send(stack, payload={"orderId": "fv-1", "amount": 500}, id="fv-large")
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "fv-large"
    await stack.record_history(run, "event_wait_filtered")


def looping_waits(count: int, key: str) -> dict[str, Any]:
    """A run taking ``count`` events of ``key`` one by one, with an action per event (its
    history grows past the test server's continue-as-new suggestion)."""
    return {
        "steps": [
            {
                "id": "each",
                "type": "control.forEach",
                "items": f"[1..{count}]",
                "steps": [
                    {
                        "id": "w",
                        "type": "event.wait",
                        "event": PAID,
                        "correlationKey": f"'{key}'",
                        "output": "got",
                    },
                    {"id": "echo", "type": "action.call", "action": "test.echo"},
                ],
                "result": {"$expr": "vars.got.id"},
                "output": "ids",
            }
        ]
    }


async def _send_batch(stack: Stack, events: list[dict[str, Any]], size: int = 50) -> None:
    for i in range(0, len(events), size):
        r = await stack.http.post(
            "/v1/events:batch", headers=stack.auth("ingest"), json={"events": events[i : i + size]}
        )
        assert r.status_code == 202, r.text


async def test_more_events_than_the_inbox_holds_are_all_applied_in_the_order_sent(
    stack: Stack, monkeypatch: Any
) -> None:
    """No buffer TTL (so a later wait cannot find them by age) and an inbox of 5: the run
    receives 30 events while it waits for the first; every one is applied, once, in the
    order sent (ids deliberately not sorted)."""
    monkeypatch.setattr(inbox_module, "MAX_INBOX", 5)
    await event_type(stack, bufferTtl="PT0S")
    count = 30
    await stack.publish("many", looping_waits(count, "flood"))
    run = await stack.start("many", {})
    await until(lambda: waiting(stack, run["id"]))
    ids = [f"f-{(i * 7) % count:02d}-{i}" for i in range(count)]
    await _send_batch(
        stack, [{"name": PAID, "id": i, "payload": {"orderId": "flood"}} for i in ids]
    )
    result = await asyncio.wait_for(stack.result(run), 50)
    assert result["output"]["ids"] == ids


async def test_forty_events_of_forty_kilobytes_are_all_applied(stack: Stack) -> None:
    """1.6 MB of events for one run (its inbox holds 512 KiB): none is lost."""
    await event_type(stack, bufferTtl="PT0S")
    count = 40
    await stack.publish("big", looping_waits(count, "big"))
    run = await stack.start("big", {})
    await until(lambda: waiting(stack, run["id"]))
    blob = "x" * 40_000
    ids = [f"big-{i:02d}" for i in range(count)]
    await _send_batch(
        stack,
        [{"name": PAID, "id": i, "payload": {"orderId": "big", "blob": blob}} for i in ids],
        size=10,
    )
    result = await asyncio.wait_for(stack.result(run), 50)
    assert result["output"]["ids"] == ids


async def test_waits_on_keys_or_events_postgresql_refuses_end_instead_of_retrying(
    stack: Stack,
) -> None:
    """A wait key with a NUL character fails the step (catchable) instead of retrying its
    registration forever; a buffered event that cannot be encoded for the run is left out
    with a FAILED delivery, and the run takes the next one."""
    await event_type(stack, bufferTtl="PT1H")
    await stack.publish(
        "nul",
        {
            "steps": [
                {
                    "id": "guard",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "w",
                            "type": "event.wait",
                            "event": PAID,
                            "correlationKey": "'a\\u0000b'",
                        }
                    ],
                    "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
                }
            ]
        },
    )
    run = await stack.start("nul", {})
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["caught"] is True

    deep: Any = "x"
    for _ in range(400):
        deep = {"a": deep}
    async with stack.sessions.begin() as session:
        session.add(
            Event(
                tenant=stack.tenant,
                event_id="too-deep",
                name=PAID,
                correlation_key="deep",
                key_source="explicit",
                payload=deep,
                status="ROUTED",
            )
        )
    await send(stack, payload={"orderId": "deep", "amount": 3}, id="after-deep")
    await stack.publish("pay", wait_for_paid())
    run = await stack.start("pay", {"orderId": "deep"})
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "after-deep"
    async with stack.sessions() as session:  # (the API's nesting limit is not ours here)
        [delivery] = (
            await session.execute(
                select(EventDeliveryRow).where(
                    EventDeliveryRow.tenant == stack.tenant,
                    EventDeliveryRow.event_id == "too-deep",
                )
            )
        ).scalars()
    assert delivery.status == "FAILED" and "cannot be sent" in (delivery.reason or "")


async def test_a_filtered_wait_reads_buffered_events_page_by_page(
    stack: Stack, monkeypatch: Any
) -> None:
    """Twelve buffered events its filter rejects, then the one it wants, and an inbox of
    five: the wait reads the buffer page by page until it finds it."""
    monkeypatch.setattr(inbox_module, "MAX_INBOX", 5)
    await event_type(stack, bufferTtl="PT1H")
    events = [
        {"name": PAID, "id": f"p-{i:02d}", "payload": {"orderId": "pg", "amount": 1}}
        for i in range(12)
    ]
    events.append({"name": PAID, "id": "p-wanted", "payload": {"orderId": "pg", "amount": 500}})
    await _send_batch(stack, events)
    await stack.publish("pay", wait_for_paid(filter="event.payload.amount > 100"))
    run = await stack.start("pay", {"orderId": "pg"})
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "p-wanted"
