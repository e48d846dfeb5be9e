"""Applying a planned import in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.bundles.model import Plan
from projections import bundles as data
from projections import event_types as event_type_data
from projections import named_schemas as schema_data
from projections.models import DefinitionVersionRow


@dataclass
class Published:
    """A workflow whose latest version the import changed (its schedules need a sync)."""

    version: DefinitionVersionRow
    paused: bool
    previous: set[str]
    disabled: set[str]


async def apply_import(
    session: AsyncSession, plan: Plan, tenant: str, actor: str, schedule_names: Any
) -> list[Published]:
    """Write the plan in the caller's transaction; returns what needs a schedule sync.

    ``schedule_names(body)`` names the schedule triggers of a definition body."""
    for ref, schema in plan.schemas:
        await schema_data.create_named_schema(session, tenant, ref, schema, actor)
    for item in plan.event_types:
        values = {
            "description": item["description"],
            "payload_schema": item["schema"],
            "correlation": item["correlation"],
            "buffer_ttl_seconds": item["bufferTtlSeconds"],
        }
        await event_type_data.put_event_type(session, tenant, item["name"], values)
    changed: list[Published] = []
    for wp in plan.workflows:
        w = wp.workflow
        row = wp.row
        if row is None:
            row = await data.create_definition(
                session,
                tenant,
                w.key,
                name=w.name,
                description=w.description,
                draft=w.draft,
                paused=w.paused,
            )
            old_versions: list[DefinitionVersionRow] = []
        else:
            old_versions = (await data.versions(session, tenant, [w.key]))[w.key]
            if wp.write_meta:
                data.replace_draft(
                    row, name=w.name, description=w.description, draft=w.draft, paused=w.paused
                )
        if wp.write_meta:
            await data.replace_disabled_triggers(session, tenant, w.key, w.disabledTriggers, actor)
        previous = {n for v in old_versions for n in schedule_names(v.body)}
        by_number = {v.version: v for v in w.versions}
        latest = next((v for v in old_versions if v.version == row.latest_version), None)
        for step in wp.versions:
            if not step.create:
                continue
            source = by_number[step.bundle_version]
            latest = await data.add_version(
                session,
                row,
                step.number,
                name=source.name,
                description=source.description,
                body=source.definition,
                action_defaults=source.actionDefaults,
                published_by=actor,
            )
            previous |= set(schedule_names(source.definition))
        if latest is not None and latest.version != row.latest_version:
            await data.make_latest(session, row, latest)
        if latest is not None:
            # Created or updated: its schedules follow the latest version, the pause and
            # the trigger switches (idempotent, like a repeated publish).
            changed.append(Published(latest, w.paused, previous, set(w.disabledTriggers)))
        await session.flush()
    return changed
