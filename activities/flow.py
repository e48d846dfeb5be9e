"""Flow control activities: ask a definition's gate for a slot, check its holders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from tempoflow.records import ProjectionBatch
from temporal_workflows.gate import (
    GATE_ACQUIRE_ACTIVITY,
    GATE_ACQUIRE_SIGNAL,
    GATE_CHECK_ACTIVITY,
    GATE_CLOSE_ACTIVITY,
    GATE_GRANT_ACTIVITY,
    GATE_RELEASE_SIGNAL,
    GATE_WORKFLOW,
    GRANT_SIGNAL,
    GateAcquire,
    GateClose,
    GateState,
)

CHECK_CONCURRENCY = 10
"""Describe calls in flight at once in the holder check."""
GRANT_CONCURRENCY = 20
"""Grant signals in flight at once."""

Write = Callable[[list[ProjectionBatch]], Awaitable[object]]


class FlowActivities:
    """Bound to the worker's projection writer (the run's ``QUEUED`` row goes first)."""

    def __init__(self, write: Write) -> None:
        self._write = write

    @activity.defn(name=GATE_ACQUIRE_ACTIVITY)
    async def acquire(self, request: GateAcquire) -> None:
        """Write the run's QUEUED row, then signal-with-start the gate (a repeat of
        either is harmless: the write is an idempotent upsert, the gate ignores a
        request it already holds)."""
        if request.pending is not None:
            await self._write([request.pending])
        client = activity.client()
        try:
            await client.get_workflow_handle(request.gate_id).signal(
                GATE_ACQUIRE_SIGNAL, request.request
            )
            return
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        await client.start_workflow(
            GATE_WORKFLOW,
            GateState(),
            id=request.gate_id,
            task_queue=request.task_queue,
            start_signal=GATE_ACQUIRE_SIGNAL,
            start_signal_args=[request.request],
            static_summary="flow control gate",
        )

    @activity.defn(name=GATE_CLOSE_ACTIVITY)
    async def close(self, request: GateClose) -> None:
        """Write a limited run's closing projections, then release its slot. The run's
        outcome is durable by then and nothing of it runs but its completion, so the next
        run starts one workflow task sooner than with a release signal the run sends and
        waits to see delivered (a repeat is harmless: the gate ignores the release of a
        run that holds nothing)."""
        if not request.batch.is_empty():
            await self._write([request.batch])
        try:
            await (
                activity.client()
                .get_workflow_handle(request.gate_id)
                .signal(GATE_RELEASE_SIGNAL, request.workflow_id)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # The gate has ended (idle, or gone): nothing holds the slot.

    @activity.defn(name=GATE_GRANT_ACTIVITY)
    async def grant(self, workflow_ids: list[str]) -> list[str]:
        """Signal each run that it holds a slot (a few at a time); returns the runs that
        no longer exist (their slots are free again). A repeat is harmless: a run that
        holds its slot ignores another grant."""
        client = activity.client()
        limit = asyncio.Semaphore(GRANT_CONCURRENCY)

        async def gone(wid: str) -> bool:
            async with limit:
                try:
                    await client.get_workflow_handle(wid).signal(GRANT_SIGNAL)
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:  # closed or never existed
                        return True
                    raise
            return False

        results = await asyncio.gather(*(gone(wid) for wid in workflow_ids))
        return [wid for wid, g in zip(workflow_ids, results, strict=True) if g]

    @activity.defn(name=GATE_CHECK_ACTIVITY)
    async def check(self, workflow_ids: list[str]) -> list[str]:
        """Those of the holders' runs that are no longer open (terminated, timed out, or
        gone): the gate frees their slots."""
        client = activity.client()
        limit = asyncio.Semaphore(CHECK_CONCURRENCY)

        async def is_closed(wid: str) -> bool:
            async with limit:
                try:
                    desc = await client.get_workflow_handle(wid).describe()
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:
                        return True
                    raise
            return desc.status not in (
                WorkflowExecutionStatus.RUNNING,
                WorkflowExecutionStatus.CONTINUED_AS_NEW,
            )

        # Side by side (a few at a time): one by one, 50 holders took seconds.
        results = await asyncio.gather(*(is_closed(wid) for wid in workflow_ids))
        return [wid for wid, closed in zip(workflow_ids, results, strict=True) if closed]
