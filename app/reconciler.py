"""The reconciler: projections follow Temporal, the only authority.

A run writes its own closing projection, except when it cannot: terminated (from the API,
the Temporal CLI or Web UI), timed out by Temporal, or its closing write lost. Two loops
correct those runs, in every API process (the correction is a conditional update, so
several processes doing it at once is harmless):

- *closed executions*: every ``reconcile_interval_seconds`` a visibility query lists
  Tempoflow executions Temporal closed as Terminated or TimedOut since the last pass
  (with an overlap, visibility being eventually consistent); an open projection of one is
  closed at once. This is the documented delay: about one interval plus Temporal's
  visibility lag.
- *sweep*: open projections not written for ``reconcile_stale_seconds`` are described in
  Temporal a page at a time, in run id order, and closed if Temporal has closed them
  (any status). A full sweep takes (open runs / page) intervals.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from app.metrics import RUNS_CLOSED_BY_TEMPORAL
from app.run_control import closing_reason
from app.run_starter import TEMPORAL_STATUS
from projections import runs
from tempoflow.ids import parse_workflow_id, workflow_id
from tempoflow.periodic import Periodic
from tempoflow.records import RunStatus
from tempoflow.settings import Settings
from temporal_workflows.models import WORKFLOW_NAME

log = logging.getLogger("tempoflow.reconciler")

OVERLAP = timedelta(seconds=60)
"""How far back each visibility query reaches before the previous pass's start."""
SWEEP_PAGE = 100
REASONS = {
    WorkflowExecutionStatus.TERMINATED: "terminated in Temporal",
    WorkflowExecutionStatus.TIMED_OUT: "timed out in Temporal (execution timeout)",
}


class Reconciler(Periodic):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], client: Client, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.settings = settings
        self._since = datetime.now(UTC) - timedelta(seconds=settings.reconcile_lookback_seconds)
        self._sweep_after: str | None = None
        super().__init__()

    task_name = "tempoflow-reconciler"

    async def once(self) -> object:
        return await self.reconcile_once()

    def interval(self) -> float:
        return self.settings.reconcile_interval_seconds

    def failed(self, err: Exception) -> None:  # Temporal or the database down, or a bug
        log.warning("reconciliation pass failed", exc_info=err)

    async def reconcile_once(self) -> int:
        """One pass of both loops; the number of runs corrected."""
        return await self.closed_executions() + await self.sweep()

    async def closed_executions(self) -> int:
        started = datetime.now(UTC)
        since = (self._since - OVERLAP).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = (
            f"WorkflowType = '{WORKFLOW_NAME}' AND "
            f"ExecutionStatus IN ('Terminated', 'TimedOut') AND CloseTime > '{since}'"
        )
        corrected = 0
        async for execution in self.client.list_workflows(query, page_size=SWEEP_PAGE):
            ids = parse_workflow_id(execution.id)
            if ids is None or execution.status is None:
                continue
            latest = await self.client.get_workflow_handle(execution.id).describe()
            if latest.run_id != execution.run_id:
                continue  # reset (a retry) or continued: the run goes on in a newer execution
            corrected += await self._close(ids[0], ids[1], execution.status, execution.close_time)
        self._since = started
        return corrected

    async def sweep(self) -> int:
        stale = datetime.now(UTC) - timedelta(seconds=self.settings.reconcile_stale_seconds)
        async with self.sessions() as session:
            page = await runs.open_runs(
                session, older_than=stale, after=self._sweep_after, limit=SWEEP_PAGE
            )
        self._sweep_after = page[-1][1] if len(page) == SWEEP_PAGE else None
        corrected = 0
        for tenant, run_id, wid in page:
            try:
                desc = await self.client.get_workflow_handle(wid).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    continue  # past Temporal's retention: nothing to mirror
                raise
            if desc.status in (None, WorkflowExecutionStatus.RUNNING):
                continue
            if desc.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                continue  # describe follows the chain; a closed link is not the run's end
            corrected += await self._close(tenant, run_id, desc.status, desc.close_time)
        return corrected

    async def _close(
        self,
        tenant: str,
        run_id: str,
        status: WorkflowExecutionStatus,
        closed_at: datetime | None,
    ) -> int:
        mapped = TEMPORAL_STATUS.get(status)
        if mapped is None or mapped == RunStatus.RUNNING:
            return 0
        reason = f"closed in Temporal as {status.name}"
        if status in REASONS:
            reason = await closing_reason(self.client, workflow_id(tenant, run_id))
        async with self.sessions.begin() as session:
            changed = await runs.close_from_temporal(
                session,
                tenant,
                run_id,
                status=RunStatus(mapped),
                closed_at=closed_at,
                reason=reason,
            )
        if changed:
            RUNS_CLOSED_BY_TEMPORAL.labels(tenant, mapped).inc()
            log.info(
                "run %s of tenant %s: projection closed as %s (%s)", run_id, tenant, mapped, reason
            )
        return int(changed)
