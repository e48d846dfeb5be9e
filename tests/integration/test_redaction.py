"""A definition's ``redact`` pointers: masked in every projection and API response, while
the run's logic sees the real values."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from tests.integration.conftest import Stack, until
from tests.integration.test_events import event_type, event_view, send, waiting

CARD, SSN, PAN, TOKEN, EVENT_CARD = "4111111111111111", "123-45-6789", "pan-0042", "tok-99", "5500"
R = "[redacted]"

DEFINITION: dict[str, Any] = {
    "redact": [
        "/payload/card",
        "/payload/customer/ssn",
        "/payload/items/*/pan",
        "/vars/customer/ssn",
        "/input/items/*/pan",
        "/output/token",
        # Variables holding copies: the echoed items, the event the wait took.
        "/vars/charged/items/*/pan",
        "/vars/paid/payload/card",
    ],
    "steps": [
        {"id": "who", "type": "state.set", "values": {"customer": {"$expr": "payload.customer"}}},
        {
            "id": "charge",
            "type": "action.call",
            "action": "test.echo",
            "input": {"items": {"$expr": "payload.items"}, "token": TOKEN},
            "output": "charged",
        },
        {
            "id": "paid",
            "type": "event.wait",
            "event": "order.paid",
            "correlationKey": "payload.orderId",
            "output": "paid",
        },
        {
            "id": "check",
            "type": "transform.assign",
            "assign": {
                "ok": f"payload.card = '{CARD}' and vars.customer.ssn = '{SSN}' and "
                f"vars.charged.items[0].pan = '{PAN}' and vars.charged.token = '{TOKEN}' and "
                f"vars.paid.payload.card = '{EVENT_CARD}'"
            },
        },
    ],
}
INPUT = {
    "orderId": "o-r1",
    "card": CARD,
    "customer": {"name": "Ada", "ssn": SSN},
    "items": [{"pan": PAN, "qty": 1}],
}


async def test_redacted_fields_are_masked_in_projections_and_api(stack: Stack) -> None:
    await event_type(stack)
    await stack.publish("redacting", DEFINITION)
    run = await stack.start("redacting", INPUT)
    assert run["input"]["card"] == R and run["input"]["customer"] == {"name": "Ada", "ssn": R}
    await until(lambda: waiting(stack, run["id"]))
    await send(stack, payload={"orderId": "o-r1", "card": EVENT_CARD, "amount": 5}, id="ev-r1")
    result = await asyncio.wait_for(stack.result(run), 30)
    # The run's logic saw every real value (Temporal's result is the unmasked output).
    assert result["output"]["ok"] is True
    assert result["output"]["customer"]["ssn"] == SSN

    async def closed() -> dict[str, Any] | None:
        view = await stack.run_view(run["id"])
        return view if view["status"] == "SUCCEEDED" else None

    view = await until(closed)
    assert view["input"]["card"] == R and view["input"]["orderId"] == "o-r1"
    out = view["output"]  # no output mapping: the vars, with /vars and /output pointers
    assert out["ok"] is True and out["customer"] == {"name": "Ada", "ssn": R}
    assert out["charged"] == {"items": [{"pan": R, "qty": 1}], "token": TOKEN, "attempt": 1}
    assert out["paid"]["payload"]["card"] == R
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    assert steps["who"]["output"] == {"customer": {"name": "Ada", "ssn": R}}
    assert steps["charge"]["input"]["items"] == [{"pan": R, "qty": 1}]
    assert steps["charge"]["output"]["token"] == R
    assert steps["paid"]["output"]["payload"] == {"orderId": "o-r1", "card": R, "amount": 5}
    r = await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    [invocation] = r.json()["items"]
    assert invocation["output"]["token"] == R
    assert invocation["output"]["items"] == [{"pan": R, "qty": 1}]
    event = await event_view(stack, "ev-r1")
    assert event["payload"]["card"] == R and event["payload"]["amount"] == 5
    r = await stack.http.get("/v1/events", headers=stack.auth("operator"))
    [listed] = [e for e in r.json()["items"] if e["id"] == "ev-r1"]
    assert listed["payload"]["card"] == R

    # Projection rows never held the values (the invocation output and the inbox keep
    # theirs: deduplication returns it, delivery needs it).
    async with stack.sessions() as session:
        for table in ("runs", "steps"):
            rows = await session.execute(
                text(f"SELECT t::text FROM {table} t WHERE run_id = :id"), {"id": run["id"]}
            )
            dump = "\n".join(r[0] for r in rows)
            for value in (CARD, SSN, PAN, EVENT_CARD):
                assert value not in dump, (table, value)


async def test_publish_refuses_malformed_pointers_with_their_paths(stack: Stack) -> None:
    r = await stack.http.post(
        "/v1/definitions/bad-redact/validate",
        headers=stack.auth("publisher"),
        json={
            "definition": {
                "redact": ["/payload/ok", "card", "/env/x"],
                "steps": [{"id": "a", "type": "action.call", "action": "core.noop"}],
            }
        },
    )
    assert r.status_code == 422
    paths = sorted(e["path"] for e in r.json()["errors"])
    assert paths == ["/redact/1", "/redact/2"]
