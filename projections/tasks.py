"""Human tasks (projections), always scoped by tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import HumanTaskRow
from projections.paging import older_than


async def get_task(session: AsyncSession, tenant: str, task_id: str) -> HumanTaskRow | None:
    row = await session.get(HumanTaskRow, task_id)
    return row if row is not None and row.tenant == tenant else None


async def list_tasks(
    session: AsyncSession,
    tenant: str,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    status: str | None = None,
    assignee: str | None = None,
    role: str | None = None,
    definition: str | None = None,
    run_id: str | None = None,
) -> list[HumanTaskRow]:
    """Newest first; ``before`` is the (created_at, id) of the previous page's last row."""
    stmt = select(HumanTaskRow).where(HumanTaskRow.tenant == tenant)
    for column, value in (
        (HumanTaskRow.status, status),
        (HumanTaskRow.assignee, assignee),
        (HumanTaskRow.role, role),
        (HumanTaskRow.definition_key, definition),
        (HumanTaskRow.run_id, run_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if before is not None:
        stmt = stmt.where(older_than((HumanTaskRow.created_at, HumanTaskRow.id), before))
    stmt = stmt.order_by(HumanTaskRow.created_at.desc(), HumanTaskRow.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def task_status(session: AsyncSession, tenant: str, task_id: str) -> str | None:
    """The task's projected status (read afresh, not from the session's identity map)."""
    return await session.scalar(
        select(HumanTaskRow.status).where(HumanTaskRow.tenant == tenant, HumanTaskRow.id == task_id)
    )
