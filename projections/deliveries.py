"""Event deliveries: what became of an inbox event for each run it reached (the routing
record the events API shows)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import EventDeliveryRow
from projections.writer import DELIVERY_UPSERT
from tempoflow.records import DeliveryStatus


async def of_events(
    session: AsyncSession, tenant: str, event_ids: list[str]
) -> dict[str, list[EventDeliveryRow]]:
    """The deliveries of each event, oldest first."""
    found: dict[str, list[EventDeliveryRow]] = {i: [] for i in event_ids}
    stmt = (
        select(EventDeliveryRow)
        .where(EventDeliveryRow.tenant == tenant, EventDeliveryRow.event_id.in_(event_ids))
        .order_by(EventDeliveryRow.updated_at, EventDeliveryRow.run_id)
    )
    for row in (await session.execute(stmt)).scalars():
        found[row.event_id].append(row)
    return found


async def add_new(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries (``EventDeliveryRow`` columns); ones already recorded stay."""
    if rows:
        await session.execute(insert(EventDeliveryRow).on_conflict_do_nothing(), rows)


async def record(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Upsert delivery outcomes (later verdicts win over the dispatcher's progress)."""
    if rows:
        await session.execute(DELIVERY_UPSERT, rows)


async def pending(
    session: AsyncSession, tenants: Collection[str], event_ids: list[str]
) -> list[EventDeliveryRow]:
    """The ``PENDING`` deliveries of these events (callers match tenant and id)."""
    stmt = select(EventDeliveryRow).where(
        EventDeliveryRow.status == DeliveryStatus.PENDING,
        EventDeliveryRow.tenant.in_(set(tenants)),
        EventDeliveryRow.event_id.in_(event_ids),
    )
    return list((await session.execute(stmt)).scalars())
