"""Event types (primary data): payload schema, correlation, buffer TTL; by tenant."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import EventType


async def put_event_type(
    session: AsyncSession, tenant: str, name: str, values: dict[str, Any]
) -> tuple[EventType, bool]:
    """Create or replace the type with ``values`` (its other columns); returns the row
    and whether it was created."""
    row = {"tenant": tenant, "name": name, **values}
    insert_stmt = insert(EventType).values(**row)
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=[EventType.tenant, EventType.name],
        set_={**{k: insert_stmt.excluded[k] for k in values}, "updated_at": func.now()},
    ).returning(EventType, EventType.created_at == EventType.updated_at)
    found, created = (await session.execute(stmt)).one()
    return found, bool(created)


async def list_event_types(session: AsyncSession, tenant: str) -> list[EventType]:
    stmt = select(EventType).where(EventType.tenant == tenant).order_by(EventType.name)
    return list((await session.execute(stmt)).scalars())


async def get_event_type(session: AsyncSession, tenant: str, name: str) -> EventType | None:
    return await session.get(EventType, (tenant, name))


async def find_event_types(
    session: AsyncSession, tenant: str, names: Collection[str]
) -> list[EventType]:
    """The tenant's types among ``names`` (unknown names are absent)."""
    stmt = select(EventType).where(EventType.tenant == tenant, EventType.name.in_(names))
    return list((await session.execute(stmt)).scalars())


async def delete_event_type(session: AsyncSession, tenant: str, name: str) -> bool:
    """Delete the type; whether it existed."""
    result = await session.execute(
        delete(EventType).where(EventType.tenant == tenant, EventType.name == name)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
