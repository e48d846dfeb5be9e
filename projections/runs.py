"""Runs and their steps (projections), always scoped by tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import RunRow, StepRow
from projections.paging import older_than


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
