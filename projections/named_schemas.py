"""Named schemas (primary data): immutable JSON Schemas by tenant and ref."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import NamedSchema
from tempoflow.definition import content_hash
from tempoflow.named_schemas import named_refs


async def create_named_schema(
    session: AsyncSession, tenant: str, ref: str, schema: dict[str, Any], created_by: str
) -> tuple[NamedSchema, bool]:
    """Store ``schema`` under ``ref`` unless the ref exists; returns the stored row (the
    existing one when it did) and whether it was created."""
    stmt = (
        insert(NamedSchema)
        .values(
            tenant=tenant,
            ref=ref,
            schema=schema,
            content_hash=content_hash(schema),
            created_by=created_by,
        )
        .on_conflict_do_nothing(index_elements=[NamedSchema.tenant, NamedSchema.ref])
        .returning(NamedSchema)
    )
    created = (await session.execute(stmt)).scalar_one_or_none()
    if created is not None:
        return created, True
    existing = await get_named_schema(session, tenant, ref)
    assert existing is not None  # conflicts only with a row that exists
    return existing, False


async def get_named_schema(session: AsyncSession, tenant: str, ref: str) -> NamedSchema | None:
    return await session.get(NamedSchema, (tenant, ref))


async def list_named_schemas(
    session: AsyncSession, tenant: str, *, limit: int, after: str | None
) -> list[NamedSchema]:
    stmt = select(NamedSchema).where(NamedSchema.tenant == tenant)
    if after is not None:
        stmt = stmt.where(NamedSchema.ref > after)
    stmt = stmt.order_by(NamedSchema.ref).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def resolve(
    session: AsyncSession, tenant: str, refs: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The named schemas ``refs`` need, transitively (a named schema may refer to others);
    unknown refs are absent."""
    found: dict[str, dict[str, Any]] = {}
    todo = set(refs)
    while todo:
        stmt = select(NamedSchema.ref, NamedSchema.schema).where(
            NamedSchema.tenant == tenant, NamedSchema.ref.in_(sorted(todo))
        )
        rows = {ref: schema for ref, schema in (await session.execute(stmt)).all()}
        found.update(rows)
        todo = {r for schema in rows.values() for _, r in named_refs(schema)} - set(found)
    return found
