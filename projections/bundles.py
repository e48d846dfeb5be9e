"""The SQL of bundle export and import: definitions with all their versions, the event
types and named schemas they use, and the writes of an import (in the caller's
transaction)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from projections import triggers
from projections.models import DefinitionRow, DefinitionVersionRow, EventType
from tempoflow.definition import content_hash

_NAMED_SCHEMAS = "named_schemas"


async def definitions(
    session: AsyncSession, tenant: str, keys: Collection[str] | None, *, for_update: bool = False
) -> list[DefinitionRow]:
    """The tenant's definitions (those of ``keys``, else all), by key."""
    stmt = select(DefinitionRow).where(DefinitionRow.tenant == tenant)
    if keys is not None:
        stmt = stmt.where(DefinitionRow.key.in_(sorted(keys)))
    stmt = stmt.order_by(DefinitionRow.key)
    if for_update:
        stmt = stmt.with_for_update()
    return list((await session.execute(stmt)).scalars())


async def versions(
    session: AsyncSession, tenant: str, keys: Collection[str]
) -> dict[str, list[DefinitionVersionRow]]:
    """Every version of each definition of ``keys``, oldest first."""
    found: dict[str, list[DefinitionVersionRow]] = {k: [] for k in keys}
    if not keys:
        return found
    stmt = (
        select(DefinitionVersionRow)
        .where(DefinitionVersionRow.tenant == tenant, DefinitionVersionRow.key.in_(sorted(keys)))
        .order_by(DefinitionVersionRow.key, DefinitionVersionRow.version)
    )
    for row in (await session.execute(stmt)).scalars():
        found[row.key].append(row)
    return found


async def existing_keys(session: AsyncSession, tenant: str, keys: Collection[str]) -> set[str]:
    if not keys:
        return set()
    stmt = select(DefinitionRow.key).where(
        DefinitionRow.tenant == tenant, DefinitionRow.key.in_(sorted(keys))
    )
    return set((await session.execute(stmt)).scalars())


async def event_types(
    session: AsyncSession, tenant: str, names: Collection[str]
) -> list[EventType]:
    if not names:
        return []
    stmt = (
        select(EventType)
        .where(EventType.tenant == tenant, EventType.name.in_(sorted(names)))
        .order_by(EventType.name)
    )
    return list((await session.execute(stmt)).scalars())


async def has_named_schemas(session: AsyncSession) -> bool:
    """Whether this database has the named-schema registry (``PUT /v1/schemas/{ref}``)."""
    found = await session.scalar(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": _NAMED_SCHEMAS}
    )
    return bool(found)


async def named_schemas(
    session: AsyncSession, tenant: str, refs: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The named schemas of ``refs`` the tenant has (none without the registry table).

    Plain SQL over the registry's table (tenant, ref, schema): the bundle reads it
    without depending on the registry's module."""
    if not refs or not await has_named_schemas(session):
        return {}
    rows = await session.execute(
        text(
            f"SELECT ref, schema FROM {_NAMED_SCHEMAS} WHERE tenant = :tenant AND ref = ANY(:refs)"
        ),
        {"tenant": tenant, "refs": sorted(refs)},
    )
    return {ref: schema for ref, schema in rows.all()}


async def create_named_schema(
    session: AsyncSession, tenant: str, ref: str, schema: dict[str, Any], actor: str
) -> None:
    """Store a named schema that does not exist yet (they are immutable)."""
    await session.execute(
        text(
            f"INSERT INTO {_NAMED_SCHEMAS} (tenant, ref, schema, content_hash, created_by) "
            "VALUES (:tenant, :ref, CAST(:schema AS jsonb), :hash, :actor)"
        ),
        {
            "tenant": tenant,
            "ref": ref,
            "schema": _json(schema),
            "hash": content_hash(schema),
            "actor": actor,
        },
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def create_definition(
    session: AsyncSession,
    tenant: str,
    key: str,
    *,
    name: str,
    description: str | None,
    draft: dict[str, Any],
    paused: bool,
) -> DefinitionRow:
    row = DefinitionRow(
        tenant=tenant,
        key=key,
        name=name,
        description=description,
        draft=draft,
        draft_hash=content_hash(draft),
        latest_version=None,
        paused=paused,
    )
    session.add(row)
    await session.flush()
    return row


def replace_draft(
    row: DefinitionRow,
    *,
    name: str,
    description: str | None,
    draft: dict[str, Any],
    paused: bool,
) -> None:
    row.name = name
    row.description = description
    row.draft = draft
    row.draft_hash = content_hash(draft)
    row.paused = paused
    row.updated_at = func.now()


async def add_version(
    session: AsyncSession,
    row: DefinitionRow,
    number: int,
    *,
    name: str,
    description: str | None,
    body: dict[str, Any],
    action_defaults: dict[str, Any] | None,
    published_by: str,
) -> DefinitionVersionRow:
    """Insert version ``number`` of a (locked) definition; the caller makes it the latest
    with :func:`make_latest` once all are added."""
    version = DefinitionVersionRow(
        tenant=row.tenant,
        key=row.key,
        version=number,
        name=name,
        description=description,
        body=body,
        content_hash=content_hash(body),
        published_by=published_by,
        action_defaults=action_defaults or None,
    )
    session.add(version)
    await session.flush()
    return version


async def make_latest(
    session: AsyncSession, row: DefinitionRow, version: DefinitionVersionRow
) -> None:
    """``version`` becomes the latest: its triggers replace the definition's event
    subscriptions and webhook hooks (schedules follow after the commit)."""
    row.latest_version = version.version
    await session.flush()
    await triggers.replace_subscriptions(session, version)
