"""The SQL of bundle export and import: definitions with all their versions, the event
types they use, and the writes of an import (in the caller's transaction). Named schemas
are read and written through :mod:`projections.named_schemas`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections import triggers
from projections.models import DefinitionRow, DefinitionVersionRow, DisabledTrigger, EventType
from tempoflow.definition import content_hash


async def definitions(
    session: AsyncSession,
    tenant: str,
    keys: Collection[str] | None,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> list[DefinitionRow]:
    """The tenant's definitions (those of ``keys``, else all), by key; deleted ones only
    with ``include_deleted`` (then check ``deleted_at``)."""
    stmt = select(DefinitionRow).where(DefinitionRow.tenant == tenant)
    if keys is not None:
        stmt = stmt.where(DefinitionRow.key.in_(sorted(keys)))
    if not include_deleted:
        stmt = stmt.where(DefinitionRow.deleted_at.is_(None))
    stmt = stmt.order_by(DefinitionRow.key)
    if for_update:
        stmt = stmt.with_for_update()
    return list((await session.execute(stmt)).scalars())


async def disabled_triggers(
    session: AsyncSession, tenant: str, keys: Collection[str]
) -> dict[str, list[str]]:
    """The names of the triggers operators turned off, by definition key (sorted)."""
    found: dict[str, list[str]] = {k: [] for k in keys}
    if not keys:
        return found
    stmt = (
        select(DisabledTrigger.definition_key, DisabledTrigger.trigger_name)
        .where(DisabledTrigger.tenant == tenant, DisabledTrigger.definition_key.in_(sorted(keys)))
        .order_by(DisabledTrigger.definition_key, DisabledTrigger.trigger_name)
    )
    for key, name in (await session.execute(stmt)).all():
        found[key].append(name)
    return found


async def replace_disabled_triggers(
    session: AsyncSession, tenant: str, key: str, names: Collection[str], actor: str
) -> None:
    """Exactly ``names`` of the definition's triggers are off."""
    await session.execute(
        delete(DisabledTrigger).where(
            DisabledTrigger.tenant == tenant, DisabledTrigger.definition_key == key
        )
    )
    for name in sorted(set(names)):
        session.add(
            DisabledTrigger(tenant=tenant, definition_key=key, trigger_name=name, disabled_by=actor)
        )
    await session.flush()


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
        DefinitionRow.tenant == tenant,
        DefinitionRow.key.in_(sorted(keys)),
        DefinitionRow.deleted_at.is_(None),
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
    if row.deleted_at is not None:
        # Re-created, as PUT /v1/definitions/{key} re-creates a deleted key: its old
        # versions stay, new ones number on after them.
        row.deleted_at = row.deleted_by = None
        row.latest_version = None
        row.created_at = func.now()


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
