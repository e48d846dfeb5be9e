"""Egress allow-lists (primary data), one row per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import EgressRules


async def get_allow_list(session: AsyncSession, tenant: str) -> tuple[list[str], datetime | None]:
    """The tenant's allow-list and when it last changed (empty, None: never set)."""
    row = (
        await session.execute(
            select(EgressRules.allow, EgressRules.updated_at).where(EgressRules.tenant == tenant)
        )
    ).one_or_none()
    if row is None:
        return [], None
    return list(row.allow), row.updated_at


async def put_allow_list(session: AsyncSession, tenant: str, allow: list[str]) -> datetime:
    """Replace the tenant's allow-list; when it changed."""
    insert_stmt = insert(EgressRules).values(tenant=tenant, allow=allow)
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=[EgressRules.tenant],
        set_={"allow": insert_stmt.excluded.allow, "updated_at": func.now()},
    ).returning(EgressRules.updated_at)
    updated: datetime = (await session.execute(stmt)).scalar_one()
    return updated
