"""Retention on the real servers: closed runs older than their retention are pruned with
all their rows; recent and open runs are kept; pending events are never pruned."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text, update

from activities.retention import Pruner
from projections.models import (
    ActionAttempt,
    ActionInvocation,
    Event,
    EventDeliveryRow,
    RunRow,
    StepRow,
)
from tempoflow.settings import RetentionSettings
from tests.integration.conftest import Stack

ECHO = {"steps": [{"id": "a", "type": "action.call", "action": "test.echo", "input": {}}]}
GATE = {"steps": [{"id": "g", "type": "action.call", "action": "test.gate", "input": {}}]}


async def rows(stack: Stack, run_id: str) -> dict[str, int]:
    async with stack.sessions() as session:

        async def count(model: Any) -> int:
            stmt = select(func.count()).select_from(model).where(model.run_id == run_id)
            return int(await session.scalar(stmt) or 0)

        return {
            "runs": await count(RunRow),
            "steps": await count(StepRow),
            "invocations": await count(ActionInvocation),
            "attempts": await count(ActionAttempt),
            "deliveries": await count(EventDeliveryRow),
        }


async def age(stack: Stack, run_id: str, days: float) -> None:
    """Pretend the run closed ``days`` ago."""
    async with stack.sessions.begin() as session:
        await session.execute(
            update(RunRow)
            .where(RunRow.run_id == run_id)
            .values(closed_at=func.now() - timedelta(days=days))
        )


async def add_event(
    stack: Stack,
    event_id: str,
    status: str,
    days: float,
    run_id: str,
    delivery: str | None = None,
) -> None:
    """An inbox event received ``days`` ago with one delivery to ``run_id``."""
    async with stack.sessions.begin() as session:
        session.add(
            Event(
                tenant=stack.tenant,
                event_id=event_id,
                name="retention.test",
                payload={},
                status=status,
                # Far in the future: no dispatcher of this test process claims it.
                next_attempt_at=func.now() + timedelta(days=1),
            )
        )
        await session.flush()
        await session.execute(
            update(Event)
            .where(Event.tenant == stack.tenant, Event.event_id == event_id)
            .values(received_at=func.now() - timedelta(days=days))
        )
        session.add(
            EventDeliveryRow(
                tenant=stack.tenant,
                event_id=event_id,
                run_id=run_id,
                workflow_id=f"{stack.tenant}/{run_id}",
                kind="wait",
                status=delivery or ("PENDING" if status == "PENDING" else "APPLIED"),
            )
        )


async def event_exists(stack: Stack, event_id: str) -> bool:
    async with stack.sessions() as session:
        return await session.get(Event, (stack.tenant, event_id)) is not None


async def test_prune_closed_runs_by_definition_and_tenant_retention(stack: Stack) -> None:
    await stack.publish("short", {**ECHO, "retention": {"closedRuns": "P2D"}})
    await stack.publish("plain", ECHO)
    await stack.publish("hold", GATE)
    short_old, short_new, plain_mid, plain_old = [
        await stack.start(key) for key in ("short", "short", "plain", "plain")
    ]
    for run in (short_old, short_new, plain_mid, plain_old):
        await asyncio.wait_for(stack.result(run), 30)
    open_run = await stack.start("hold")
    await asyncio.wait_for(stack.effects.reached[open_run["id"]].wait(), 30)

    await age(stack, short_old["id"], 3)  # beyond its definition's 2 days
    await age(stack, short_new["id"], 1)  # within them
    await age(stack, plain_mid["id"], 3)  # within the tenant's 5 days
    await age(stack, plain_old["id"], 6)  # beyond them
    # Events: an old settled one goes, an old pending one and a recent one stay.
    await add_event(stack, "old-settled", "ROUTED", 6, plain_old["id"])
    await add_event(stack, "old-pending", "PENDING", 6, plain_old["id"])
    await add_event(stack, "recent", "ROUTED", 1, plain_mid["id"])
    # Routed, but its delivery to a run is not settled yet: kept too.
    await add_event(stack, "old-undelivered", "ROUTED", 6, plain_mid["id"], delivery="PENDING")
    before = {run["id"]: await rows(stack, run["id"]) for run in (short_old, plain_old)}
    for counts in before.values():
        assert counts["runs"] == counts["steps"] == counts["invocations"] == 1
        assert counts["attempts"] == 1

    settings = stack.settings.model_copy(
        update={
            "retention": RetentionSettings(
                tenants={stack.tenant: timedelta(days=5)}, prune_batch_size=1
            )
        }
    )
    # Two pruners side by side (SKIP LOCKED): each row is deleted once.
    rounds = await asyncio.gather(
        Pruner(stack.sessions, settings).prune_once(),
        Pruner(stack.sessions, settings).prune_once(),
    )
    pruned = {k: sum(r.get(k, 0) for r in rounds) for k in ("runs", "events")}
    # Batches of one run each: both due runs went, in separate transactions.
    assert pruned["runs"] >= 2 and pruned["events"] >= 1

    for gone in (short_old, plain_old):
        left = await rows(stack, gone["id"])
        # The pending event's delivery stays until that event is settled.
        expected = {"deliveries": 1} if gone is plain_old else {}
        assert left == {**dict.fromkeys(left, 0), **expected}, (gone["id"], left)
    for kept in (short_new, plain_mid, open_run):
        assert (await rows(stack, kept["id"]))["runs"] == 1
    assert (await rows(stack, short_new["id"]))["steps"] == 1
    assert not await event_exists(stack, "old-settled")
    assert await event_exists(stack, "old-pending")
    assert await event_exists(stack, "recent")
    assert await event_exists(stack, "old-undelivered")
    # The pruned runs are gone from the API as well (Temporal keeps them for its own
    # namespace retention; the run view falls back to Temporal when asked directly).
    r = await stack.http.get("/v1/runs?definition=short", headers=stack.auth())
    assert [item["id"] for item in r.json()["items"]] == [short_new["id"]]
    view = await stack.run_view(short_old["id"])
    assert view["source"] == "temporal" and view["status"] == "SUCCEEDED"

    # A second round finds nothing more of this tenant.
    again = await Pruner(stack.sessions, settings).prune_once()
    assert not await event_exists(stack, "recent") or again.get("events", 0) == 0
    stack.effects.release[open_run["id"]].set()
    await asyncio.wait_for(stack.result(open_run), 30)


async def test_retention_is_validated_at_publish(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/bad",
        headers=stack.auth(),
        json={"name": "bad", "definition": {**ECHO, "retention": {"closedRuns": "PT5M"}}},
    )
    assert r.status_code == 201, r.text  # a draft may be incomplete
    r = await stack.http.post("/v1/definitions/bad/publish", headers=stack.auth())
    assert r.status_code == 422, r.text
    body = r.json()
    assert any(e["path"] == "/retention/closedRuns" for e in body["errors"]), body


async def test_prune_uses_the_closed_at_index(stack: Stack) -> None:
    async with stack.sessions() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            (
                await session.execute(
                    text(
                        "EXPLAIN SELECT run_id FROM runs WHERE closed_at IS NOT NULL "
                        "AND closed_at < now() - interval '30 days'"
                    )
                )
            ).scalars()
        )
    assert "ix_runs_closed" in plan, plan
