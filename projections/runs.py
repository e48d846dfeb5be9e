"""Runs and their steps (projections), always scoped by tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import feed
from projections.models import HumanTaskRow, RunRow, StepRow, WaitRow
from projections.paging import older_than
from tempoflow.records import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    RunStatus,
    StepStatus,
    TaskStatus,
    WaitStatus,
)


async def get_run(session: AsyncSession, tenant: str, run_id: str) -> RunRow | None:
    stmt = select(RunRow).where(RunRow.tenant == tenant, RunRow.run_id == run_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_runs(
    session: AsyncSession,
    tenant: str,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    status: str | None = None,
    definition: str | None = None,
    parent: str | None = None,
) -> list[RunRow]:
    """Newest first; ``before`` is the (started_at, run_id) of the previous page's last row."""
    stmt = select(RunRow).where(RunRow.tenant == tenant)
    if status is not None:
        stmt = stmt.where(RunRow.status == status)
    if definition is not None:
        stmt = stmt.where(RunRow.definition_key == definition)
    if parent is not None:
        stmt = stmt.where(RunRow.parent_run_id == parent)
    if before is not None:
        stmt = stmt.where(older_than((RunRow.started_at, RunRow.run_id), before))
    stmt = stmt.order_by(RunRow.started_at.desc(), RunRow.run_id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def list_steps(session: AsyncSession, tenant: str, run_id: str) -> list[StepRow]:
    stmt = (
        select(StepRow)
        .where(StepRow.tenant == tenant, StepRow.run_id == run_id)
        .order_by(StepRow.seq)
    )
    return list((await session.execute(stmt)).scalars())


async def open_runs(
    session: AsyncSession, *, older_than: datetime, after: str | None, limit: int
) -> list[tuple[str, str, str]]:
    """Open runs (RUNNING, WAITING) last written before ``older_than``, every tenant, in
    run id order after ``after``: ``(tenant, run_id, workflow_id)``."""
    stmt = select(RunRow.tenant, RunRow.run_id, RunRow.workflow_id).where(
        RunRow.status.not_in([str(s) for s in TERMINAL_RUN]),
        RunRow.updated_at < older_than,
    )
    if after is not None:
        stmt = stmt.where(RunRow.run_id > after)
    stmt = stmt.order_by(RunRow.run_id).limit(limit)
    return [(t, r, w) for t, r, w in (await session.execute(stmt)).all()]


async def record_scheduled(
    session: AsyncSession,
    *,
    tenant: str,
    run_id: str,
    workflow_id: str,
    definition_key: str,
    definition_version: int,
    input: Any,
    start_at: datetime,
) -> None:
    """The row of a run Temporal holds until ``start_at`` (SCHEDULED until the run's own
    first write, which always wins: ``seq`` -1). Should the run have written first (a
    very short delay), only ``start_at`` is added."""
    stmt = insert(RunRow).values(
        run_id=run_id,
        tenant=tenant,
        workflow_id=workflow_id,
        definition_key=definition_key,
        definition_version=definition_version,
        status=str(RunStatus.SCHEDULED),
        seq=-1,
        input=input,
        started_at=start_at,
        start_at=start_at,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[RunRow.run_id], set_={"start_at": stmt.excluded.start_at}
        )
    )


async def scheduled_among(session: AsyncSession, tenant: str, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` still SCHEDULED, with their ``startAt`` still ahead."""
    if not run_ids:
        return set()
    stmt = select(RunRow.run_id).where(
        RunRow.tenant == tenant,
        RunRow.run_id.in_(run_ids),
        RunRow.status == str(RunStatus.SCHEDULED),
        RunRow.start_at > func.now(),
    )
    return set((await session.execute(stmt)).scalars())


async def close_from_temporal(
    session: AsyncSession,
    tenant: str,
    run_id: str,
    *,
    status: RunStatus,
    closed_at: datetime | None,
    reason: str,
) -> bool:
    """Mirror a close Temporal reports that the run could not write itself (terminated,
    timed out, or its own closing write lost): the run row, and its open steps, waits and
    tasks, as CANCELED. Only an open run changes; True when it did."""
    closed_at = closed_at or datetime.now(UTC)
    error = {"type": str(status), "message": reason}
    result = await session.execute(
        update(RunRow)
        .where(
            RunRow.tenant == tenant,
            RunRow.run_id == run_id,
            RunRow.status.not_in([str(s) for s in TERMINAL_RUN]),
        )
        .values(status=str(status), closed_at=closed_at, error=error, updated_at=func.now())
    )
    if not getattr(result, "rowcount", 0):
        return False
    # Its live streams end now, as for a close the run wrote itself.
    await feed.emit_run_closed(
        session, tenant, run_id, str(status), error=error, closed_at=closed_at
    )
    await session.execute(
        update(StepRow)
        .where(StepRow.run_id == run_id, StepRow.status.not_in([str(s) for s in TERMINAL_STEP]))
        .values(status=str(StepStatus.CANCELED), finished_at=closed_at)
    )
    await session.execute(
        update(WaitRow)
        .where(WaitRow.run_id == run_id, WaitRow.status == str(WaitStatus.WAITING))
        .values(status=str(WaitStatus.CANCELED))
    )
    await session.execute(
        update(HumanTaskRow)
        .where(HumanTaskRow.run_id == run_id, HumanTaskRow.status == str(TaskStatus.OPEN))
        .values(status=str(TaskStatus.CANCELED))
    )
    return True


async def reopen(session: AsyncSession, tenant: str, run_id: str) -> dict[str, Any] | None:
    """Open a closed run again before Temporal resumes it (a retry), so the resumed
    execution's writes (its sequence numbers start again from the reset point) go
    through; the row as it was (for ``restore``), None when there is none."""
    row = await get_run(session, tenant, run_id)
    if row is None:
        return None
    before = {c: getattr(row, c) for c in _REOPENED}
    before.update(run_id=run_id, tenant=tenant)
    await session.execute(
        update(RunRow)
        .where(RunRow.tenant == tenant, RunRow.run_id == run_id)
        .values(
            status=str(RunStatus.RUNNING),
            seq=0,
            closed_at=None,
            output=None,
            error=None,
            updated_at=func.now(),
        )
    )
    return before


_REOPENED = ("status", "seq", "closed_at", "output", "error")


async def restore(session: AsyncSession, before: dict[str, Any]) -> None:
    """Undo ``reopen`` (Temporal refused to resume the run), unless the run wrote since."""
    values = {c: before[c] for c in _REOPENED}
    await session.execute(
        update(RunRow)
        .where(
            RunRow.tenant == before["tenant"],
            RunRow.run_id == before["run_id"],
            RunRow.seq == 0,
        )
        .values(**values, updated_at=func.now())
    )


@dataclass(frozen=True)
class OpenRunFilter:
    definition: str | None = None
    version: int | None = None
    status: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None

    def apply(self, stmt: Select[Any], tenant: str) -> Select[Any]:
        stmt = stmt.where(
            RunRow.tenant == tenant, RunRow.status.not_in([str(s) for s in TERMINAL_RUN])
        )
        if self.definition is not None:
            stmt = stmt.where(RunRow.definition_key == self.definition)
        if self.version is not None:
            stmt = stmt.where(RunRow.definition_version == self.version)
        if self.status is not None:
            stmt = stmt.where(RunRow.status == self.status)
        if self.started_after is not None:
            stmt = stmt.where(RunRow.started_at >= self.started_after)
        if self.started_before is not None:
            stmt = stmt.where(RunRow.started_at < self.started_before)
        return stmt


async def select_open(
    session: AsyncSession, tenant: str, where: OpenRunFilter, *, limit: int
) -> tuple[int, list[str]]:
    """How many of the tenant's open runs match, and the first ``limit`` ids (oldest
    first)."""
    count = await session.scalar(where.apply(select(func.count()).select_from(RunRow), tenant))
    stmt = where.apply(select(RunRow.run_id), tenant)
    ids = await session.execute(stmt.order_by(RunRow.started_at, RunRow.run_id).limit(limit))
    return int(count or 0), list(ids.scalars())
