"""Read queries of the run log (lines written by ``feed.emit`` with attempt outcomes)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import RunLogRow


async def list_lines(
    session: AsyncSession,
    tenant: str,
    run_id: str,
    *,
    min_level: int,
    after: int | None,
    limit: int,
) -> list[RunLogRow]:
    """Lines of a run at ``min_level`` and above, oldest first, after line id ``after``."""
    stmt = (
        select(RunLogRow)
        .where(
            RunLogRow.tenant == tenant,
            RunLogRow.run_id == run_id,
            RunLogRow.level >= min_level,
        )
        .order_by(RunLogRow.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(RunLogRow.id > after)
    return list((await session.execute(stmt)).scalars())
