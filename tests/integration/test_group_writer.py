"""Group commit (projections/group.py) against the real PostgreSQL: concurrent writes
share transactions, each caller learns its own outcome, a bad write never fails the
others of its group."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from projections import invocations
from projections.group import GroupWriter
from projections.models import ActionInvocation, StepRow
from projections.storable import MARKER
from tempoflow.records import InvocationRecord, ProjectionBatch, StepRecord, StepStatus
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _step(run_id: str, seq: int, output: object = None) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        tenant="t-group",
        seq=seq,
        path=f"/steps/{seq}",
        step_id=f"s{seq}",
        type="action.call",
        status=StepStatus.SUCCEEDED,
        started_at=datetime.now(UTC),
        output=output,
    )


def _writer(stack: Stack) -> GroupWriter:
    return GroupWriter(stack.sessions.kw["bind"])


async def _outputs(stack: Stack, run_id: str) -> dict[int, object]:
    async with stack.sessions() as session:
        rows = (await session.execute(select(StepRow).where(StepRow.run_id == run_id))).scalars()
        return {row.seq: row.output for row in rows}


async def test_concurrent_writes_share_transactions(stack: Stack) -> None:
    writer = _writer(stack)
    run_id = str(uuid.uuid4())
    await asyncio.gather(
        *(writer.write([ProjectionBatch(steps=[_step(run_id, i, {"i": i})])]) for i in range(60))
    )
    # Every write returned only once committed: all rows are there.
    assert await _outputs(stack, run_id) == {i: {"i": i} for i in range(60)}
    assert writer.stats.writes == 60
    assert writer.stats.transactions < 60 / 2  # grouped (at most two in flight at once)
    assert writer.stats.fallbacks == 0


async def test_a_bad_write_does_not_fail_its_group(stack: Stack) -> None:
    """A value PostgreSQL refuses (NUL in JSON) makes the group's transaction fail: every
    write is written again on its own, the bad one degraded, and all callers succeed."""
    writer = _writer(stack)
    run_id = str(uuid.uuid4())
    outputs = [{"i": i} for i in range(20)]
    outputs[7] = {"text": "nul\u0000here"}
    await asyncio.gather(
        *(
            writer.write([ProjectionBatch(steps=[_step(run_id, i, o)])])
            for i, o in enumerate(outputs)
        )
    )
    stored = await _outputs(stack, run_id)
    assert {i: stored[i] for i in range(20) if i != 7} == {i: {"i": i} for i in range(20) if i != 7}
    assert MARKER in str(stored[7])
    assert writer.stats.fallbacks >= 1


async def test_claims_in_one_group_each_get_their_own_outcome(stack: Stack) -> None:
    writer = _writer(stack)
    tenant, run_a, run_b = "t-group", str(uuid.uuid4()), str(uuid.uuid4())
    shared = invocations.InvocationRef(tenant, "test.echo", 1, f"k-{uuid.uuid4()}")
    done = invocations.InvocationRef(tenant, "test.echo", 1, f"k-{uuid.uuid4()}")
    now = datetime.now(UTC)
    # A recorded success for ``done``.
    await writer.write(
        [
            ProjectionBatch(
                invocations=[
                    InvocationRecord(
                        tenant=tenant,
                        action="test.echo",
                        action_version=1,
                        idempotency_key=done.key,
                        run_id=run_a,
                        step_path="/steps/0",
                        attempt=1,
                        status="SUCCEEDED",
                        invocation_status="SUCCEEDED",
                        started_at=now,
                        finished_at=now,
                        output={"answer": 42},
                    )
                ]
            )
        ]
    )

    def request(ref: invocations.InvocationRef, run_id: str) -> invocations.ClaimRequest:
        return invocations.ClaimRequest(
            ref=ref,
            run_id=run_id,
            step_path="/steps/0",
            loop=None,
            attempt=1,
            started_at=now,
            lease=timedelta(minutes=1),
        )

    first, second, again = await asyncio.gather(
        writer.claim([], request(shared, run_a)),
        writer.claim([], request(shared, run_b)),
        writer.claim([], request(done, run_b)),
    )
    # One of two runs claiming one key holds it; the other is told who does.
    assert sorted([first.status, second.status]) == ["HELD", "RUNNING"]
    held = first if first.status == "HELD" else second
    assert held.held_by is not None and held.held_by.startswith(run_a if held is second else run_b)
    assert (again.status, again.output) == ("SUCCEEDED", {"answer": 42})
    async with stack.sessions() as session:
        row = await session.get(ActionInvocation, (tenant, "test.echo", 1, shared.key))
    assert row is not None and row.status == "RUNNING"
