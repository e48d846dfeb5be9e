"""Bundle export: the tenant's definitions with every version, the event types and named
schemas they use and the dependency summary, as the bundle document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activities.registry import ActionRegistry
from projections import bundles as data
from projections import named_schemas as schema_data
from projections.models import DefinitionRow, DefinitionVersionRow, EventType
from tempoflow.bundle import (
    FORMAT,
    FORMAT_VERSION,
    current_body,
    schema_refs,
    settings_of,
    triggers_of,
    uses,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def workflow_of(
    row: DefinitionRow, versions: list[DefinitionVersionRow], disabled: list[str]
) -> dict[str, Any]:
    """A definition as a bundle workflow (no audit fields)."""
    listed = [
        {
            "version": v.version,
            "name": v.name,
            "description": v.description,
            "definition": v.body,
            "actionDefaults": v.action_defaults,
        }
        for v in versions
    ]
    body = current_body(row.draft, listed)
    return {
        "key": row.key,
        "name": row.name,
        "description": row.description,
        "paused": bool(row.paused),
        "draft": row.draft,
        "versions": listed,
        "settings": settings_of(body),
        "triggers": triggers_of(body),
        "disabledTriggers": sorted(disabled),
    }


def event_type_of(row: EventType) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "schema": row.payload_schema,
        "correlation": row.correlation,
        "bufferTtlSeconds": row.buffer_ttl_seconds,
    }


async def export_bundle(
    session: AsyncSession, tenant: str, keys: list[str] | None, registry: ActionRegistry
) -> tuple[dict[str, Any], list[str]]:
    """The bundle of the tenant's definitions (``keys``, else all) and the keys of
    ``keys`` that do not exist."""
    rows = await data.definitions(session, tenant, set(keys) if keys is not None else None)
    missing = sorted(set(keys or []) - {r.key for r in rows})
    versions = await data.versions(session, tenant, [r.key for r in rows])
    disabled = await data.disabled_triggers(session, tenant, [r.key for r in rows])
    workflows = [workflow_of(r, versions[r.key], disabled[r.key]) for r in rows]
    used = uses(body for w in workflows for body in _bodies(w))
    types = [event_type_of(t) for t in await data.event_types(session, tenant, used.event_types)]
    refs = set(used.schemas) | set(uses_in_schemas(t["schema"] for t in types))
    # The named schemas they refer to and those these refer to, as far as the tenant has them.
    schemas = await schema_data.resolve(session, tenant, refs)
    dependencies = {
        "actions": [
            {"name": name, "version": spec.version if (spec := registry.get(name)) else None}
            for name in sorted(used.actions)
        ],
        "nodeTypes": sorted(used.node_types),
        "eventTypes": sorted(used.event_types),
        "schemas": sorted(refs | set(schemas)),
        "definitions": sorted(used.definitions),
    }
    bundle = {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "exportedAt": _now(),
        "workflows": workflows,
        "eventTypes": types,
        "schemas": [{"ref": ref, "schema": schemas[ref]} for ref in sorted(schemas)],
        "dependencies": dependencies,
    }
    return bundle, missing


def _bodies(workflow: dict[str, Any]) -> list[Any]:
    return [workflow["draft"], *(v["definition"] for v in workflow["versions"])]


def uses_in_schemas(schemas: Any) -> set[str]:
    return {ref for schema in schemas for ref in schema_refs(schema)}
