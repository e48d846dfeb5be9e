"""Correlation parity on the real servers: a payload's ``workflowCorrelationKey`` (or
``correlationKey``) is an explicit key, and the tenant default applies to types without a
correlation of their own."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tests.integration.conftest import Stack, open_stack, until
from tests.integration.test_events import PAID, event_type, send, wait_for_paid, waiting


async def test_a_payload_workflow_correlation_key_resumes_a_waiting_run(stack: Stack) -> None:
    # The type's own derivation (payload.orderId) would give "other": the payload's
    # workflowCorrelationKey is explicit and wins.
    await event_type(stack)
    await stack.publish("pay", wait_for_paid())
    run = await stack.start("pay", {"orderId": "o-wck"})
    await until(lambda: waiting(stack, run["id"]))
    receipt = await send(
        stack,
        payload={"workflowCorrelationKey": "o-wck", "orderId": "other", "amount": 5},
        id="evt-wck",
    )
    assert receipt["correlationKey"] == "o-wck" and receipt["correlated"] is True
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "evt-wck"
    assert result["output"]["amount"] == 5
    r = await stack.http.get("/v1/events/evt-wck", headers=stack.auth("operator"))
    assert r.json()["keySource"] == "explicit"


async def test_payload_correlation_key_wins_over_workflow_correlation_key(stack: Stack) -> None:
    await event_type(stack, correlation=None)
    await stack.publish("pay", wait_for_paid())
    run = await stack.start("pay", {"orderId": "o-ck"})
    await until(lambda: waiting(stack, run["id"]))
    # Wrong key first: it must not resume the run.
    await send(stack, payload={"workflowCorrelationKey": "o-ck", "correlationKey": "x"}, id="e1")
    await send(stack, payload={"correlationKey": "o-ck", "amount": 1}, id="e2")
    result = await asyncio.wait_for(stack.result(run), 30)
    assert result["output"]["paid"]["id"] == "e2"


async def test_an_invalid_payload_key_is_refused_with_its_path(stack: Stack) -> None:
    await event_type(stack)
    r = await stack.http.post(
        "/v1/events",
        headers=stack.auth("ingest"),
        json={"name": PAID, "payload": {"workflowCorrelationKey": True}},
    )
    assert r.status_code == 422, r.text
    [item] = r.json()["errors"]
    assert item["path"] == "/payload/workflowCorrelationKey"
    assert item["code"] == "correlation_key_invalid"


async def test_the_tenant_default_correlates_types_without_one(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with open_stack(
        database_url, temporal_client, sessions, default_correlation="payload.orderId"
    ) as stack:
        r = await stack.http.put(
            f"/v1/event-types/{PAID}", headers=stack.auth("publisher"), json={}
        )
        assert r.status_code in (200, 201), r.text
        await stack.publish("pay", wait_for_paid())
        run = await stack.start("pay", {"orderId": "o-def"})
        await until(lambda: waiting(stack, run["id"]))
        receipt: dict[str, Any] = await send(
            stack, payload={"orderId": "o-def", "amount": 9}, id="evt-def"
        )
        assert receipt["correlationKey"] == "o-def"
        result = await asyncio.wait_for(stack.result(run), 30)
        assert result["output"]["paid"]["id"] == "evt-def"
        r = await stack.http.get("/v1/events/evt-def", headers=stack.auth("operator"))
        assert r.json()["keySource"] == "default"
