"""Definitions and their immutable versions (primary data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections import triggers
from projections.models import DefinitionRow, DefinitionVersionRow
from tempoflow.definition import content_hash


async def get_definition(
    session: AsyncSession,
    tenant: str,
    key: str,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> DefinitionRow | None:
    """The definition; ``None`` when it does not exist or was deleted (unless
    ``include_deleted``: then check ``deleted_at``)."""
    stmt = select(DefinitionRow).where(DefinitionRow.tenant == tenant, DefinitionRow.key == key)
    if not include_deleted:
        stmt = stmt.where(DefinitionRow.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def upsert_draft(
    session: AsyncSession,
    tenant: str,
    key: str,
    *,
    name: str,
    description: str | None,
    body: dict[str, Any],
) -> tuple[DefinitionRow, bool]:
    """Create or replace the draft; returns the row and whether it was created.

    A deleted definition's key is re-created: a new draft, unpaused, with no published
    version (its old versions stay, and the next publish numbers on after them)."""
    row = await get_definition(session, tenant, key, for_update=True, include_deleted=True)
    created = row is None or row.deleted_at is not None
    if row is None:
        row = DefinitionRow(tenant=tenant, key=key, latest_version=None)
        session.add(row)
    elif row.deleted_at is not None:
        row.deleted_at = row.deleted_by = None
        row.latest_version = None
        row.paused = False
        row.created_at = func.now()
    row.name = name
    row.description = description
    row.draft = body
    row.draft_hash = content_hash(body)
    row.updated_at = func.now()
    await session.flush()
    await session.refresh(row)
    return row, created


async def list_definitions(
    session: AsyncSession, tenant: str, *, limit: int, after: str | None
) -> list[DefinitionRow]:
    stmt = select(DefinitionRow).where(
        DefinitionRow.tenant == tenant, DefinitionRow.deleted_at.is_(None)
    )
    if after is not None:
        stmt = stmt.where(DefinitionRow.key > after)
    stmt = stmt.order_by(DefinitionRow.key).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def get_version(
    session: AsyncSession, tenant: str, key: str, version: int
) -> DefinitionVersionRow | None:
    return await session.get(DefinitionVersionRow, (tenant, key, version))


async def published_version(
    session: AsyncSession, tenant: str, key: str, version: int | None = None
) -> DefinitionVersionRow | None:
    """Published version ``version`` of a definition, or its latest when ``version`` is
    ``None``, to start a run of; ``None`` when the definition does not exist, was deleted
    or has no such version (``get_version`` reads a deleted definition's versions)."""
    latest = (
        await session.execute(
            select(DefinitionRow.latest_version).where(
                DefinitionRow.tenant == tenant,
                DefinitionRow.key == key,
                DefinitionRow.deleted_at.is_(None),
            )
        )
    ).first()
    if latest is None:
        return None
    version = version if version is not None else latest[0]
    if version is None:
        return None
    return await get_version(session, tenant, key, version)


async def list_versions(session: AsyncSession, tenant: str, key: str) -> list[DefinitionVersionRow]:
    stmt = (
        select(DefinitionVersionRow)
        .where(DefinitionVersionRow.tenant == tenant, DefinitionVersionRow.key == key)
        .order_by(DefinitionVersionRow.version.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def publish(
    session: AsyncSession,
    definition: DefinitionRow,
    *,
    published_by: str,
    action_defaults: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[DefinitionVersionRow, bool]:
    """Publish the (locked) draft; the same content as the latest version (with the same
    pinned ``action_defaults``) is not republished.

    ``body``: what the version stores, when not the draft itself (the draft with the
    named schemas it refers to pinned).

    Returns the version and whether it was created.
    """
    body = definition.draft if body is None else body
    body_hash = definition.draft_hash if body is definition.draft else content_hash(body)
    if definition.latest_version is not None:
        latest = await get_version(
            session, definition.tenant, definition.key, definition.latest_version
        )
        if (
            latest is not None
            and latest.content_hash == body_hash
            and (latest.action_defaults or {}) == (action_defaults or {})
        ):
            return latest, False
    # Numbers continue after every version the key ever had (a re-created key's too).
    highest = await session.scalar(
        select(func.max(DefinitionVersionRow.version)).where(
            DefinitionVersionRow.tenant == definition.tenant,
            DefinitionVersionRow.key == definition.key,
        )
    )
    version = DefinitionVersionRow(
        tenant=definition.tenant,
        key=definition.key,
        version=(highest or 0) + 1,
        name=definition.name,
        description=definition.description,
        body=body,
        content_hash=body_hash,
        published_by=published_by,
        action_defaults=action_defaults or None,
    )
    session.add(version)
    definition.latest_version = version.version
    await session.flush()
    await session.refresh(version)
    await triggers.replace_subscriptions(session, version)
    return version, True


async def set_paused(session: AsyncSession, definition: DefinitionRow, paused: bool) -> None:
    definition.paused = paused
    definition.updated_at = func.now()
    await session.flush()
    await session.refresh(definition)


async def mark_deleted(session: AsyncSession, definition: DefinitionRow, actor: str) -> None:
    """Delete the (locked) definition: its triggers, hooks and trigger switches go; the
    row stays, marked, so its versions stay readable and their numbers are not reused."""
    definition.deleted_at = func.now()
    definition.deleted_by = actor
    definition.updated_at = func.now()
    await triggers.remove_all(session, definition.tenant, definition.key)
    await session.flush()
    await session.refresh(definition)
