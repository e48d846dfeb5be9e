"""Reading the run-activity feed (written by ``projections/feed.py``) for live streams.

Readers follow ``(txid, id)`` and take only rows of transactions older than every
transaction still in progress (``pg_snapshot_xmin``): those rows are final, and every
row committed later sorts after them, so a reader never passes an entry that commits
late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Entry:
    """A feed entry as streams send it."""

    id: int
    txid: int
    run_id: str
    kind: str
    data: dict[str, Any]


Position = tuple[int, int]
"""``(txid, id)`` of the last entry a reader has seen."""

_STABLE = "txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"


async def position_of(session: AsyncSession, tenant: str, entry_id: int) -> Position | None:
    """The reading position just after entry ``entry_id`` of ``tenant`` (None if there is
    no such entry)."""
    row = (
        await session.execute(
            text("SELECT txid, id FROM run_feed WHERE id = :id AND tenant = :tenant"),
            {"id": entry_id, "tenant": tenant},
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else None


async def now_position(session: AsyncSession) -> Position:
    """A position after every entry already final: a reader starting here sees only
    entries of transactions still in progress or yet to start."""
    stmt = text("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
    xmin = (await session.execute(stmt)).scalar_one()
    return (int(xmin) - 1, 2**63 - 1)


async def read(
    session: AsyncSession,
    tenant: str,
    after: Position,
    *,
    run_id: str | None = None,
    definition: str | None = None,
    limit: int = 500,
) -> list[Entry]:
    """Final entries of ``tenant`` after ``after`` in feed order, of one run or of one
    definition's runs (or all)."""
    where = ["tenant = :tenant", "(txid, id) > (:txid, :id)", _STABLE]
    params: dict[str, Any] = {"tenant": tenant, "txid": after[0], "id": after[1], "limit": limit}
    if run_id is not None:
        where.append("run_id = :run_id")
        params["run_id"] = run_id
    if definition is not None:
        where.append("definition_key = :definition")
        params["definition"] = definition
    stmt = text(
        "SELECT id, txid, run_id, kind, data FROM run_feed WHERE "
        + " AND ".join(where)
        + " ORDER BY txid, id LIMIT :limit"
    )
    result = await session.execute(stmt, params)
    return [Entry(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in result.all()]


async def position_before(session: AsyncSession, tenant: str, entry_id: int) -> Position:
    """The position of the tenant's last entry with an id up to ``entry_id`` (the start
    when there is none): resuming after an entry that no longer exists."""
    row = (
        await session.execute(
            text(
                "SELECT txid, id FROM run_feed WHERE tenant = :tenant AND id <= :id "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"id": entry_id, "tenant": tenant},
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else (-1, 0)
