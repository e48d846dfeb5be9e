"""Bundle export and import (the format is ``tempoflow.bundle``; see docs/bundles.md).

An import is planned from reads (:func:`plan_import`: every error at once, nothing
written), then applied in the caller's transaction (:func:`apply_import`); the routes
commit, then sync the Temporal Schedules of the workflows whose latest version changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activities.registry import ActionRegistry
from projections import bundles as data
from projections import event_types as event_type_data
from projections import secrets as secret_store
from projections.models import DefinitionRow, DefinitionVersionRow, EventType
from tempoflow.bundle import (
    FORMAT,
    FORMAT_VERSION,
    Bundle,
    BundleWorkflow,
    current_body,
    references,
    schema_refs,
    settings_of,
    triggers_of,
    uses,
)
from tempoflow.definition import content_hash, validate_definition
from tempoflow.definition.validation import secret_references, unknown_secret_issues
from tempoflow.errors import ErrorItem
from tempoflow.jsonsize import json_size


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def workflow_of(row: DefinitionRow, versions: list[DefinitionVersionRow]) -> dict[str, Any]:
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
    workflows = [workflow_of(r, versions[r.key]) for r in rows]
    used = uses(body for w in workflows for body in _bodies(w))
    types = [event_type_of(t) for t in await data.event_types(session, tenant, used.event_types)]
    refs = set(used.schemas) | set(uses_in_schemas(t["schema"] for t in types))
    schemas = await _schema_closure(session, tenant, refs)
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


async def _schema_closure(
    session: AsyncSession, tenant: str, refs: set[str]
) -> dict[str, dict[str, Any]]:
    """The named schemas of ``refs`` and those they refer to, as far as the tenant has them."""
    found: dict[str, dict[str, Any]] = {}
    todo = set(refs)
    while todo:
        got = await data.named_schemas(session, tenant, todo)
        found.update(got)
        todo = uses_in_schemas(got.values()) - set(found) - todo
    return found


# -- import ------------------------------------------------------------------------------


@dataclass
class Summary:
    """What an import creates, updates and leaves unchanged (by kind)."""

    created: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    updated: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    unchanged: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    warnings: list[ErrorItem] = field(default_factory=list)

    def to_json(self, *, dry_run: bool, force: bool) -> dict[str, Any]:
        return {
            "dryRun": dry_run,
            "force": force,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "warnings": [w.model_dump(exclude_none=True) for w in self.warnings],
        }


def _kinds() -> dict[str, list[Any]]:
    return {"workflows": [], "versions": [], "eventTypes": [], "schemas": []}


@dataclass
class VersionPlan:
    bundle_version: int
    number: int
    create: bool


@dataclass
class WorkflowPlan:
    workflow: BundleWorkflow
    row: DefinitionRow | None
    versions: list[VersionPlan]
    latest: int | None
    write_meta: bool
    was_paused: bool = False


@dataclass
class Plan:
    workflows: list[WorkflowPlan] = field(default_factory=list)
    event_types: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    """Event types to write, with whether each is new."""
    schemas: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    errors: list[ErrorItem] = field(default_factory=list)
    conflicts: list[ErrorItem] = field(default_factory=list)


@dataclass
class ImportContext:
    tenant: str
    registry: ActionRegistry
    available_actions: set[str]
    force: bool
    max_definition_bytes: int


def _version_key(body: Any, action_defaults: Any) -> tuple[str, str]:
    return content_hash(body), content_hash(action_defaults or {})


def _check_definitions(bundle: Bundle, ctx: ImportContext, plan: Plan) -> None:
    names = ctx.registry.names()
    schemas = ctx.registry.input_schemas()
    for i, workflow in enumerate(bundle.workflows):
        bodies = [(f"/workflows/{i}/draft", workflow.draft, False)] + [
            (f"/workflows/{i}/versions/{j}/definition", v.definition, True)
            for j, v in enumerate(workflow.versions)
        ]
        for at, body, published in bodies:
            size = json_size(body)
            if size > ctx.max_definition_bytes:
                plan.errors.append(
                    ErrorItem(
                        path=at,
                        code="definition_too_large",
                        message=f"{size} bytes; the limit is {ctx.max_definition_bytes}",
                    )
                )
                continue
            if not published:
                continue  # drafts may be invalid, as PUT /v1/definitions/{key} allows
            for issue in validate_definition(body, names, schemas):
                if issue.severity == "error":
                    plan.errors.append(issue.model_copy(update={"path": at + issue.path}))


def _locations(bundle: Bundle) -> dict[str, dict[str, tuple[str, bool]]]:
    """Per dependency kind, each name with the pointer of its first use and whether a
    published version (not only a draft) uses it."""
    found: dict[str, dict[str, tuple[str, bool]]] = {"action": {}, "event": {}, "definition": {}}

    def note(kind: str, name: Any, at: str, published: bool) -> None:
        if not isinstance(name, str):
            return
        seen = found[kind].get(name)
        if seen is None or (published and not seen[1]):
            found[kind][name] = (at, published)

    for i, workflow in enumerate(bundle.workflows):
        bodies = [
            (f"/workflows/{i}/versions/{j}/definition", v.definition, True)
            for j, v in enumerate(workflow.versions)
        ]
        bodies.append((f"/workflows/{i}/draft", workflow.draft, False))
        for at, body, published in bodies:
            for kind, name, path in references(body):
                note(kind, name, at + path, published)
    return found


async def _secret_warnings(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    """Secrets the latest versions refer to that the tenant lacks (values never travel in
    a bundle: create them in the target first). Warnings, as at publish."""
    latest = [
        (f"/workflows/{i}/versions/{len(w.versions) - 1}/definition", w.versions[-1].definition)
        for i, w in enumerate(bundle.workflows)
        if w.versions
    ]
    refs = {at: secret_references(body) for at, body in latest}
    names = {name for found in refs.values() for _, name in found}
    existing = await secret_store.existing_names(session, ctx.tenant, names)
    for at, found in refs.items():
        plan.summary.warnings += [
            w.model_copy(update={"path": at + w.path})
            for w in unknown_secret_issues(found, existing)
        ]


async def _check_dependencies(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    found = _locations(bundle)
    in_bundle_types = {t.name for t in bundle.eventTypes}
    tenant_types = {t.name for t in await data.event_types(session, ctx.tenant, found["event"])}
    in_bundle_keys = {w.key for w in bundle.workflows}
    tenant_keys = await data.existing_keys(session, ctx.tenant, found["definition"])
    checks = [
        (
            "action",
            ctx.available_actions,
            "dependency.action_unavailable",
            "no running worker of this task queue has action {!r}",
            "start a worker that loads it (GET /v1/actions shows each action's workers)",
        ),
        (
            "event",
            in_bundle_types | tenant_types,
            "dependency.event_type_missing",
            "event type {!r} is neither in the tenant nor in the bundle",
            "PUT /v1/event-types/{name} first, or export the bundle with it",
        ),
        (
            "definition",
            in_bundle_keys | tenant_keys,
            "dependency.definition_missing",
            "child definition {!r} is neither in the tenant nor in the bundle",
            "import it first, or export the bundle with it (key=…)",
        ),
    ]
    for kind, have, code, message, hint in checks:
        for name, (at, published) in sorted(found[kind].items()):
            if name in have:
                continue
            item = ErrorItem(path=at, code=code, message=message.format(name), hint=hint)
            if published:
                plan.errors.append(item)
            else:  # only a draft uses it: it may exist by the time the draft is published
                plan.summary.warnings.append(item.model_copy(update={"severity": "warning"}))


async def _plan_schemas(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    wanted = {s.ref: s.schema_ for s in bundle.schemas}
    used = uses(b for w in bundle.workflows for b in [w.draft, *(v.definition for v in w.versions)])
    refs = set(used.schemas) | uses_in_schemas(t.schema_ for t in bundle.eventTypes)
    refs |= uses_in_schemas(wanted.values())
    existing = await data.named_schemas(session, ctx.tenant, set(wanted) | refs)
    registry = await data.has_named_schemas(session)
    for index, (ref, schema) in enumerate(sorted(wanted.items())):
        if ref in existing:
            if content_hash(existing[ref]) == content_hash(schema):
                plan.summary.unchanged["schemas"].append(ref)
            else:
                plan.conflicts.append(
                    ErrorItem(
                        path=f"/schemas/{index}",
                        code="schema_conflict",
                        message=f"named schema {ref!r} exists with other content",
                        hint="named schemas are immutable (even with force): publish the "
                        "change under a new ref",
                    )
                )
        elif not registry:
            plan.errors.append(
                ErrorItem(
                    path=f"/schemas/{index}",
                    code="schema_registry_unavailable",
                    message="this server has no named-schema registry",
                )
            )
        else:
            plan.schemas.append((ref, schema))
            plan.summary.created["schemas"].append(ref)
    for ref in sorted(refs - set(wanted) - set(existing)):
        plan.summary.warnings.append(
            ErrorItem(
                path="/schemas",
                code="dependency.schema_missing",
                message=f"named schema {ref!r} is neither in the tenant nor in the bundle",
                hint="published versions carry the schemas they were published with; a draft "
                "needs it before it is published",
                severity="warning",
            )
        )


async def _plan_event_types(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    existing = {
        t.name: event_type_of(t)
        for t in await data.event_types(session, ctx.tenant, [t.name for t in bundle.eventTypes])
    }
    for index, item in enumerate(bundle.eventTypes):
        wanted = item.model_dump(by_alias=True)
        current = existing.get(item.name)
        if current is None:
            plan.event_types.append((wanted, True))
            plan.summary.created["eventTypes"].append(item.name)
        elif current == wanted:
            plan.summary.unchanged["eventTypes"].append(item.name)
        elif ctx.force:
            plan.event_types.append((wanted, False))
            plan.summary.updated["eventTypes"].append(item.name)
        else:
            plan.conflicts.append(
                ErrorItem(
                    path=f"/eventTypes/{index}",
                    code="event_type_conflict",
                    message=f"event type {item.name!r} exists with other settings",
                    hint="import with force=true to replace it",
                )
            )


def _plan_workflow(
    index: int,
    workflow: BundleWorkflow,
    row: DefinitionRow | None,
    versions: list[DefinitionVersionRow],
    ctx: ImportContext,
    plan: Plan,
) -> None:
    key = workflow.key
    wanted = workflow.model_dump(by_alias=True)
    if row is None:
        fresh = [VersionPlan(v.version, v.version, True) for v in workflow.versions]
        plan.workflows.append(
            WorkflowPlan(workflow, None, fresh, fresh[-1].number if fresh else None, True)
        )
        plan.summary.created["workflows"].append(key)
        plan.summary.created["versions"] += [
            {"key": key, "version": s.number, "bundleVersion": s.bundle_version} for s in fresh
        ]
        return
    if workflow_of(row, versions) == wanted:
        plan.summary.unchanged["workflows"].append(key)
        plan.summary.unchanged["versions"] += [
            {"key": key, "version": v.version, "bundleVersion": v.version} for v in versions
        ]
        return
    if not ctx.force:
        plan.conflicts.append(
            ErrorItem(
                path=f"/workflows/{index}/key",
                code="definition_key_conflict",
                message=f"definition {key!r} exists with other content",
                hint="import with force=true to replace its draft, metadata and triggers "
                "(its versions are kept)",
            )
        )
        return
    by_content = {_version_key(v.body, v.action_defaults): v.version for v in versions}
    next_number = max((v.version for v in versions), default=0) + 1
    latest_key = _version_key(versions[-1].body, versions[-1].action_defaults) if versions else None
    steps: list[VersionPlan] = []
    for v in workflow.versions:
        content = _version_key(v.definition, v.actionDefaults)
        if content in by_content:
            steps.append(VersionPlan(v.version, by_content[content], False))
        else:
            steps.append(VersionPlan(v.version, next_number, True))
            by_content[content] = next_number
            latest_key = content
            next_number += 1
    if workflow.versions:
        last = workflow.versions[-1]
        if _version_key(last.definition, last.actionDefaults) != latest_key:
            # The bundle's latest matches an older version here: publish it again, as
            # publishing that content would (version numbers only grow).
            steps.append(VersionPlan(last.version, next_number, True))
    latest = steps[-1].number if steps and steps[-1].create else row.latest_version
    meta = (row.name, row.description, row.draft, bool(row.paused))
    write_meta = meta != (workflow.name, workflow.description, workflow.draft, workflow.paused)
    plan.workflows.append(
        WorkflowPlan(workflow, row, steps, latest, write_meta, was_paused=bool(row.paused))
    )
    plan.summary.updated["workflows"].append(key)
    for s in steps:
        bucket = plan.summary.created if s.create else plan.summary.unchanged
        bucket["versions"].append(
            {"key": key, "version": s.number, "bundleVersion": s.bundle_version}
        )


async def plan_import(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, *, lock: bool
) -> Plan:
    """Every check of an import and what it would write; nothing is written."""
    plan = Plan()
    _check_definitions(bundle, ctx, plan)
    await _secret_warnings(session, bundle, ctx, plan)
    await _check_dependencies(session, bundle, ctx, plan)
    await _plan_schemas(session, bundle, ctx, plan)
    await _plan_event_types(session, bundle, ctx, plan)
    keys = [w.key for w in bundle.workflows]
    rows = {r.key: r for r in await data.definitions(session, ctx.tenant, keys, for_update=lock)}
    versions = await data.versions(session, ctx.tenant, list(rows))
    for index, workflow in enumerate(bundle.workflows):
        _plan_workflow(
            index, workflow, rows.get(workflow.key), versions.get(workflow.key, []), ctx, plan
        )
    return plan


@dataclass
class Published:
    """A workflow whose latest version the import changed (its schedules need a sync)."""

    version: DefinitionVersionRow
    paused: bool
    previous: set[str]


async def apply_import(
    session: AsyncSession, plan: Plan, tenant: str, actor: str, schedule_names: Any
) -> list[Published]:
    """Write the plan in the caller's transaction; returns what needs a schedule sync.

    ``schedule_names(body)`` names the schedule triggers of a definition body."""
    for ref, schema in plan.schemas:
        await data.create_named_schema(session, tenant, ref, schema, actor)
    for item, _ in plan.event_types:
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
        previous: set[str] = set()
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
            previous = {n for v in old_versions for n in schedule_names(v.body)}
            if wp.write_meta:
                data.replace_draft(
                    row, name=w.name, description=w.description, draft=w.draft, paused=w.paused
                )
        by_number = {v.version: v for v in w.versions}
        latest: DefinitionVersionRow | None = None
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
        if latest is not None:
            await data.make_latest(session, row, latest)
            changed.append(Published(latest, w.paused, previous))
        elif wp.row is not None and old_versions and wp.was_paused != w.paused:
            # Only the pause changed: the schedules of the latest version follow it.
            changed.append(Published(old_versions[-1], w.paused, previous))
        await session.flush()
    return changed
