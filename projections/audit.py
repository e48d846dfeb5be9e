"""The audit log: who did what, when and why (primary data, append-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import AuditRow


async def record(
    session: AsyncSession,
    *,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    details: Any = None,
) -> None:
    """Append one entry, in the caller's transaction (so it commits with the change)."""
    await session.execute(
        insert(AuditRow).values(
            tenant=tenant,
            actor=actor,
            action=action,
            target=target,
            reason=reason,
            details=details,
        )
    )


async def list_entries(
    session: AsyncSession,
    tenant: str,
    *,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditRow]:
    """Newest first; ``before_id`` is the previous page's last id."""
    stmt = select(AuditRow).where(AuditRow.tenant == tenant)
    if before_id is not None:
        stmt = stmt.where(AuditRow.id < before_id)
    if action is not None:
        stmt = stmt.where(AuditRow.action == action)
    if target is not None:
        stmt = stmt.where(AuditRow.target == target)
    if actor is not None:
        stmt = stmt.where(AuditRow.actor == actor)
    if since is not None:
        stmt = stmt.where(AuditRow.at >= since)
    if until is not None:
        stmt = stmt.where(AuditRow.at < until)
    stmt = stmt.order_by(AuditRow.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
