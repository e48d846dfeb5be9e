"""Idempotency keys survive retries and worker crashes; recorded outcomes are reused."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowFailureError

from activities.registry import ActionContext
from launcher.worker import create_worker
from projections.invocations import InvocationRef, start_invocation
from projections.models import ActionAttempt, ActionInvocation, StepRow
from projections.writer import write_batch
from tempoflow.records import InvocationRecord, ProjectionBatch
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


async def _step_running(stack: Stack, run_id: str) -> None:
    """Until the run's action step is projected RUNNING (its activity reached the claim)."""
    while True:
        async with stack.sessions() as session:
            status = await session.scalar(
                select(StepRow.status).where(StepRow.run_id == run_id, StepRow.seq >= 0)
            )
        if status == "RUNNING":
            return
        await asyncio.sleep(0.05)


async def test_second_run_waits_for_a_live_claim_and_gets_its_output(stack: Stack) -> None:
    """Run 2 arrives while run 1's handler runs with the same key: it does not run the
    handler, waits (without using its attempts) and returns run 1's recorded output."""
    started: dict[str, asyncio.Event] = {}
    release = asyncio.Event()

    @stack.worker_registry.action("test.slowpay", input_model=Anything, output_model=Anything)
    async def slowpay(data: Anything, ctx: ActionContext) -> Anything:
        stack.effects.record(ctx)
        started.setdefault(ctx.run_id, asyncio.Event()).set()
        await release.wait()
        return Anything(paidBy=ctx.run_id, attempt=ctx.attempt)

    await stack.publish(
        "slowcharge",
        {
            "steps": [
                {
                    "id": "pay",
                    "type": "action.call",
                    "action": "test.slowpay",
                    "output": "paid",
                    "input": {},
                    "idempotencyKey": "'charge-' & payload.order",
                    "timeout": "PT20S",
                    "retry": {"maxAttempts": 1},
                },
            ]
        },
    )
    try:
        first = await stack.start("slowcharge", {"order": "o-race"})
        await asyncio.wait_for(started.setdefault(first["id"], asyncio.Event()).wait(), 20)
        second = await stack.start("slowcharge", {"order": "o-race"})
        await asyncio.wait_for(_step_running(stack, second["id"]), 20)
        # Past the claim and past a first give-back (its waiting budget is 2 s here).
        await asyncio.sleep(3)
        assert stack.effects.calls[(second["id"], "pay")] == 0
        release.set()
        out1 = (await asyncio.wait_for(stack.result(first), 30))["output"]
        out2 = (await asyncio.wait_for(stack.result(second), 30))["output"]
    finally:
        release.set()
    # maxAttempts 1: the waiting never counted as an attempt of run 2.
    assert out1 == out2 == {"paid": {"paidBy": first["id"], "attempt": 1}}
    assert stack.effects.calls[(first["id"], "pay")] == 1
    assert stack.effects.calls[(second["id"], "pay")] == 0
    async with stack.sessions() as session:
        rows = (
            await session.execute(
                select(ActionAttempt.run_id, ActionAttempt.status).where(
                    ActionAttempt.tenant == stack.tenant,
                    ActionAttempt.idempotency_key == "charge-o-race",
                )
            )
        ).all()
        invocation = await session.scalar(
            select(ActionInvocation).where(
                ActionInvocation.tenant == stack.tenant,
                ActionInvocation.idempotency_key == "charge-o-race",
            )
        )
    assert sorted((r.run_id, r.status) for r in rows) == sorted(
        [(first["id"], "SUCCEEDED"), (second["id"], "DEDUPLICATED")]
    )
    assert invocation is not None and invocation.status == "SUCCEEDED"
    assert invocation.claimed_until is None  # the claim ended with its outcome


async def test_claim_of_a_dead_attempt_is_taken_over_when_its_lease_ends(stack: Stack) -> None:
    """Run 1's attempt hangs past its start-to-close (its worker is as good as dead) and
    never reports: run 2 with the same key waits until the claim's lease ends, then
    takes over and runs the handler itself."""
    release, hung = asyncio.Event(), asyncio.Event()
    calls: dict[str, float] = {}
    registry = stack.worker_registry

    @registry.action("test.hangpay", input_model=Anything, output_model=Anything)
    async def hangpay(data: Anything, ctx: ActionContext) -> Anything:
        stack.effects.record(ctx)
        calls[ctx.run_id] = time.monotonic()
        if (data.model_extra or {}).get("hang"):
            hung.set()
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue  # a hung handler: cancellation does not reach it
        return Anything(paidBy=ctx.run_id)

    def definition(hang: bool) -> dict[str, object]:
        return {
            "steps": [
                {
                    "id": "pay",
                    "type": "action.call",
                    "action": "test.hangpay",
                    "output": "paid",
                    "input": {"hang": hang},
                    "idempotencyKey": "'lease-' & payload.order",
                    "timeout": "PT3S" if hang else "PT20S",
                    "retry": {"maxAttempts": 1},
                },
            ]
        }

    await stack.publish("hangcharge", definition(True))
    await stack.publish("retrycharge", definition(False))
    queue = stack.settings.task_queue + "-lease"
    stack.settings.task_queue = queue
    async with create_worker(
        stack.client, task_queue=queue, registry=registry, sessions=stack.sessions
    ):
        try:
            first = await stack.start("hangcharge", {"order": "o-lease"})
            await asyncio.wait_for(hung.wait(), 20)
            second = await stack.start("retrycharge", {"order": "o-lease"})
            result = await asyncio.wait_for(stack.result(second), 30)
            assert result["output"] == {"paid": {"paidBy": second["id"]}}
            # Not before the first attempt's lease (its 3 s start-to-close) ended.
            assert calls[second["id"]] - calls[first["id"]] >= 3
            with pytest.raises(WorkflowFailureError):  # its only attempt timed out
                await asyncio.wait_for(stack.result(first), 30)
        finally:
            release.set()  # before the worker shuts down (it waits for the handler)
    async with stack.sessions() as session:
        invocation = await session.scalar(
            select(ActionInvocation).where(
                ActionInvocation.tenant == stack.tenant,
                ActionInvocation.idempotency_key == "lease-o-lease",
            )
        )
    assert invocation is not None and invocation.status == "SUCCEEDED"
    assert invocation.output == {"paidBy": second["id"]}


async def test_claim_rules(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The claim on a key, step by step: another step waits while the lease lives, the
    same step's later attempt takes over, a late outcome of an earlier attempt leaves
    the live claim be, an outcome ends the claim, an ended lease is taken over."""
    ref = InvocationRef(f"t{uuid.uuid4().hex[:10]}", "test.count", 1, "claim-rules")
    hour = timedelta(hours=1)

    async def claim(run: str, attempt: int, lease: timedelta = hour) -> str:
        async with sessions.begin() as session:
            got = await start_invocation(
                session,
                ref,
                run_id=run,
                step_path="/steps/0",
                loop=None,
                attempt=attempt,
                lease=lease,
            )
        return got.status

    async def report(run: str, attempt: int, status: str) -> None:
        record = InvocationRecord(
            tenant=ref.tenant,
            action=ref.action,
            action_version=ref.version,
            idempotency_key=ref.key,
            run_id=run,
            step_path="/steps/0",
            attempt=attempt,
            status="FAILED",
            invocation_status=status,
            started_at=datetime.now(UTC),
            finished_at=datetime.now(UTC),
        )
        async with sessions.begin() as session:
            await write_batch(session, ProjectionBatch(invocations=[record]))

    run_a, run_b = str(uuid.uuid4()), str(uuid.uuid4())
    assert await claim(run_a, 1) == "RUNNING"
    assert await claim(run_b, 1) == "HELD"
    assert await claim(run_a, 2) == "RUNNING"  # the same step's retry: at once
    await report(run_a, 1, "RETRYING")  # attempt 1 reports late
    assert await claim(run_b, 1) == "HELD"  # attempt 2's claim still holds
    await report(run_a, 2, "RETRYING")
    assert await claim(run_b, 1, lease=-hour) == "RUNNING"  # free: B claims (lease ended)
    assert await claim(run_a, 3) == "RUNNING"  # B's lease ended: A takes over
    assert await claim(run_b, 2) == "HELD"
