"""Temporal's per-execution signal cap never loses an event: a waiting run continues as
new before it, and a refusal at the cap is retried, not final.

A dedicated dev server with a cap of 20 signals per execution (Temporal's default is
10,000); the run's own budget is lowered to 10 so it continues as new first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections.models import Event, EventDeliveryRow
from temporal_workflows import events as inbox_module
from tests.conftest import dev_server
from tests.integration.conftest import Stack, open_stack, until
from tests.integration.test_events import PAID, event_type, looping_waits, waiting

CAP = 20


@pytest.fixture
async def capped(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Stack]:
    async with (
        dev_server(
            ["--dynamic-config-value", f"history.maximumSignalsPerExecution={CAP}"]
        ) as client,
        open_stack(database_url, client, sessions) as stack,
    ):
        yield stack


async def test_a_run_receiving_more_signals_than_the_cap_applies_every_event(
    capped: Stack, monkeypatch: Any
) -> None:
    stack = capped
    monkeypatch.setattr(inbox_module, "MAX_SIGNALS", CAP // 2)
    await event_type(stack, bufferTtl="PT0S")
    count = 3 * CAP
    await stack.publish("capped", looping_waits(count, "cap"))
    run = await stack.start("capped", {})
    await until(lambda: waiting(stack, run["id"]))
    ids = [f"cap-{i:02d}" for i in range(count)]
    r = await stack.http.post(
        "/v1/events:batch",
        headers=stack.auth("ingest"),
        json={"events": [{"name": PAID, "id": i, "payload": {"orderId": "cap"}} for i in ids]},
    )
    assert r.status_code == 202, r.text
    result = await asyncio.wait_for(stack.result(run), 50)
    assert result["output"]["ids"] == ids

    async def settled() -> bool:
        async with stack.sessions() as session:
            statuses = set(
                (
                    await session.execute(
                        select(EventDeliveryRow.status).where(
                            EventDeliveryRow.tenant == stack.tenant
                        )
                    )
                ).scalars()
            )
        return statuses == {"APPLIED"}

    await until(settled)  # never FAILED at the cap
    executions = [
        e async for e in stack.client.list_workflows(f'WorkflowId = "{run["workflowId"]}"')
    ]
    assert len(executions) >= count // CAP  # it continued as new on the way


async def test_a_refusal_at_the_cap_is_retried_not_failed(capped: Stack, monkeypatch: Any) -> None:
    """A run that cannot continue as new in time (its budget above the cap): the events
    Temporal refuses stay PENDING with the reason, to be retried — never FAILED."""
    stack = capped
    monkeypatch.setattr(inbox_module, "MAX_SIGNALS", 10 * CAP)
    await event_type(stack, bufferTtl="PT0S")
    await stack.publish(
        "never",
        {
            "steps": [
                {
                    "id": "w",
                    "type": "event.wait",
                    "event": PAID,
                    "correlationKey": "'never'",
                    "filter": "false",
                }
            ]
        },
    )
    run = await stack.start("never", {})
    await until(lambda: waiting(stack, run["id"]))
    count = CAP + 5
    r = await stack.http.post(
        "/v1/events:batch",
        headers=stack.auth("ingest"),
        json={
            "events": [
                {"name": PAID, "id": f"n-{i:02d}", "payload": {"orderId": "never"}}
                for i in range(count)
            ]
        },
    )
    assert r.status_code == 202, r.text

    async def refused() -> list[Any] | None:
        async with stack.sessions() as session:
            rows = (
                await session.execute(
                    select(Event).where(Event.tenant == stack.tenant, Event.last_error.is_not(None))
                )
            ).scalars()
            found = list(rows)
        return found if len(found) >= count - CAP else None

    pending = await until(refused)
    assert all(e.status == "PENDING" for e in pending)
    assert all("signal" in (e.last_error or "") for e in pending)
    async with stack.sessions() as session:
        statuses = set(
            (
                await session.execute(
                    select(EventDeliveryRow.status).where(EventDeliveryRow.tenant == stack.tenant)
                )
            ).scalars()
        )
    assert "FAILED" not in statuses
    await stack.client.get_workflow_handle(run["workflowId"]).terminate()
