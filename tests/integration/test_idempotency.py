"""Idempotency keys survive retries and worker crashes; recorded outcomes are reused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from activities.registry import ActionContext
from projections.models import ActionAttempt, ActionInvocation
from tempoflow.worker import create_worker
from tests.actions import Anything
from tests.integration.conftest import Stack


async def test_worker_killed_after_side_effect_retries_with_same_key(stack: Stack) -> None:
    """The first attempt performs the effect, then its worker dies before reporting."""
    queue = stack.settings.task_queue + "-crash"
    stack.settings.task_queue = queue
    await stack.publish(
        "crash",
        {
            "steps": [
                {
                    "id": "send",
                    "type": "action.call",
                    "action": "test.receive",
                    "input": {"hang_first": True, "amount": 5},
                    "output": "receipt",
                    "retry": {"initialInterval": "PT0.1S"},
                },
            ]
        },
    )

    def worker():  # type: ignore[no-untyped-def]
        return create_worker(
            stack.client,
            task_queue=queue,
            registry=stack.worker_registry,
            sessions=stack.sessions,
            graceful_shutdown=timedelta(seconds=0.2),
        )

    first = worker()
    task = asyncio.create_task(first.run())
    run = await stack.start("crash")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    await first.shutdown()  # the "crash": the attempt never reports completion
    await task
    async with worker():
        result = await asyncio.wait_for(stack.result(run), 30)
    calls = stack.effects.calls[(run["id"], "send")]
    keys = stack.effects.keys[(run["id"], "send")]
    assert calls == 2 and len(keys) == 1  # two attempts, one key
    key = next(iter(keys))
    assert stack.effects.received[key] == {"hang_first": True, "amount": 5}
    assert result["output"]["receipt"]["received"] >= 1
    async with stack.sessions() as session:
        attempts = (
            await session.execute(
                select(ActionAttempt.attempt, ActionAttempt.status)
                .where(ActionAttempt.idempotency_key == key)
                .order_by(ActionAttempt.attempt)
            )
        ).all()
        invocation = await session.scalar(
            select(ActionInvocation).where(ActionInvocation.idempotency_key == key)
        )
    assert [tuple(a) for a in attempts] == [(1, "CANCELED"), (2, "SUCCEEDED")]
    assert invocation is not None and invocation.status == "SUCCEEDED"
    assert invocation.attempts == 2 and invocation.output == result["output"]["receipt"]


async def test_recorded_success_is_returned_not_repeated(stack: Stack) -> None:
    """Two runs with the same business idempotency key: one side effect."""
    await stack.publish(
        "charge",
        {
            "steps": [
                {
                    "id": "pay",
                    "type": "action.call",
                    "action": "test.count",
                    "output": "paid",
                    "input": {"order": {"$expr": "payload.order"}},
                    "idempotencyKey": "'charge-' & payload.order",
                },
            ]
        },
    )
    first = await stack.start("charge", {"order": "o-9"})
    second = await stack.start("charge", {"order": "o-9"})
    out1 = (await stack.result(first))["output"]
    out2 = (await stack.result(second))["output"]
    assert out1 == out2 == {"paid": {"order": "o-9", "calls": 1}}
    assert (
        stack.effects.calls[(first["id"], "pay")] + stack.effects.calls[(second["id"], "pay")] == 1
    )
    async with stack.sessions() as session:
        statuses = (
            (
                await session.execute(
                    select(ActionAttempt.status).where(
                        ActionAttempt.idempotency_key == "charge-o-9"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert sorted(statuses) == ["DEDUPLICATED", "SUCCEEDED"]


async def test_retries_record_every_attempt(stack: Stack) -> None:
    await stack.publish(
        "flaky2",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "action.call",
                    "action": "test.flaky",
                    "input": {"failures": 2},
                    "retry": {
                        "maxAttempts": 4,
                        "initialInterval": "PT0.05S",
                        "backoffCoefficient": 2,
                    },
                },
            ]
        },
    )
    run = await stack.start("flaky2")
    await stack.result(run)
    async with stack.sessions() as session:
        rows = (
            await session.execute(
                select(ActionAttempt.attempt, ActionAttempt.status, ActionAttempt.error)
                .join(
                    ActionInvocation,
                    ActionInvocation.idempotency_key == ActionAttempt.idempotency_key,
                )
                .where(ActionInvocation.run_id == run["id"])
                .order_by(ActionAttempt.attempt)
            )
        ).all()
    assert [(r.attempt, r.status) for r in rows] == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCEEDED")]
    assert rows[0].error["type"] == "Transient"


async def test_invocations_api(stack: Stack) -> None:
    await stack.publish(
        "flaky3",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "action.call",
                    "action": "test.flaky",
                    "input": {"failures": 1},
                    "retry": {"initialInterval": "PT0.05S"},
                },
            ]
        },
    )
    run = await stack.start("flaky3")
    await stack.result(run)
    r = await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert item["action"] == "test.flaky" and item["status"] == "SUCCEEDED"
    assert item["stepPath"] == "/steps/0" and item["attempts"] == 2
    assert [(a["attempt"], a["status"]) for a in item["attemptLog"]] == [
        (1, "FAILED"),
        (2, "SUCCEEDED"),
    ]
    other = await stack.http.get("/v1/runs/nope/invocations", headers=stack.auth())
    assert other.status_code == 404


async def test_attempt_that_never_reports_is_closed_by_the_next(stack: Stack) -> None:
    """Attempt 1 outlives its timeout and ignores cancellation (a hung worker): Temporal
    runs attempt 2, whose claim closes attempt 1 as ABANDONED instead of leaving it
    RUNNING forever."""
    release = asyncio.Event()
    registry = stack.worker_registry

    @registry.action("test.zombie", input_model=Anything, output_model=Anything)
    async def zombie(data: Anything, ctx: ActionContext) -> Anything:
        if stack.effects.record(ctx) == 1:
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue  # a hung handler: cancellation does not reach it
        return Anything(attempt=ctx.attempt)

    await stack.publish(
        "zombie",
        {
            "steps": [
                {
                    "id": "z",
                    "type": "action.call",
                    "action": "test.zombie",
                    "timeout": "PT1S",
                    "retry": {"initialInterval": "PT0.1S"},
                    "output": "z",
                },
            ]
        },
    )
    queue = stack.settings.task_queue + "-zombie"
    stack.settings.task_queue = queue
    async with create_worker(
        stack.client, task_queue=queue, registry=registry, sessions=stack.sessions
    ):
        try:
            run = await stack.start("zombie")
            result = await asyncio.wait_for(stack.result(run), 30)
            assert result["output"]["z"] == {"attempt": 2}
            async with stack.sessions() as session:
                rows = (
                    await session.execute(
                        select(ActionAttempt.attempt, ActionAttempt.status)
                        .where(ActionAttempt.run_id == run["id"])
                        .order_by(ActionAttempt.attempt)
                    )
                ).all()
            assert [tuple(r) for r in rows] == [(1, "ABANDONED"), (2, "SUCCEEDED")]
        finally:
            release.set()  # before the worker shuts down (it waits for the handler)
