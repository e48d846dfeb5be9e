"""Read-only statistics for metrics and readiness: inbox depth, dispatcher lag, open and
stale runs. Each is one indexed aggregate (``ix_events_pending``, ``ix_runs_open``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import Event, RunRow, StepRow


@dataclass(frozen=True)
class InboxStats:
    pending: dict[str, int]
    """Pending events per tenant."""
    oldest_pending_age: float
    """Seconds since the oldest pending event was received (0 when none)."""
    dispatch_lag: float
    """Seconds the longest-due pending event has waited for a dispatcher (0 when none)."""


async def dispatch_lag(session: AsyncSession) -> float:
    """Seconds the longest-due pending event has been waiting (retries scheduled in the
    future do not count)."""
    due = await session.scalar(
        select(func.extract("epoch", func.now() - func.min(Event.next_attempt_at))).where(
            Event.status == "PENDING", Event.next_attempt_at <= func.now()
        )
    )
    return max(float(due or 0.0), 0.0)


async def inbox_stats(session: AsyncSession) -> InboxStats:
    rows = (
        await session.execute(
            select(
                Event.tenant,
                func.count(),
                func.extract("epoch", func.now() - func.min(Event.received_at)),
            )
            .where(Event.status == "PENDING")
            .group_by(Event.tenant)
        )
    ).all()
    return InboxStats(
        pending={tenant: count for tenant, count, _ in rows},
        oldest_pending_age=max((float(age or 0) for _, _, age in rows), default=0.0),
        dispatch_lag=await dispatch_lag(session),
    )


async def open_runs(
    session: AsyncSession, stale_after: timedelta
) -> dict[tuple[str, str], tuple[int, int]]:
    """Open runs per (tenant, status): how many, and how many ``RUNNING`` ones show no
    progress for ``stale_after`` (no run record and no step written since; a long step
    looks like this too). Waiting runs are never stale: they wait on purpose."""
    since = func.now() - stale_after
    progressed = (
        select(StepRow.run_id)
        .where(StepRow.run_id == RunRow.run_id, StepRow.finished_at >= since)
        .exists()
    )
    stale = func.count().filter(RunRow.status == "RUNNING", RunRow.updated_at < since, ~progressed)
    rows = (
        await session.execute(
            select(RunRow.tenant, RunRow.status, func.count(), stale)
            .where(RunRow.closed_at.is_(None))
            .group_by(RunRow.tenant, RunRow.status)
        )
    ).all()
    return {(t, s): (n, k) for t, s, n, k in rows}
