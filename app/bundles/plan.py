"""Planning an import from reads: what is created, updated or unchanged, the conflicts,
and every check (nothing is written)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.bundles.checks import (
    check_definitions,
    check_dependencies,
    check_schemas,
    secret_warnings,
    version_key,
)
from app.bundles.export import event_type_of, uses_in_schemas, workflow_of
from app.bundles.model import ImportContext, Plan, VersionPlan, WorkflowPlan
from projections import bundles as data
from projections import named_schemas as schema_data
from projections.models import DefinitionRow, DefinitionVersionRow
from tempoflow.bundle import Bundle, BundleWorkflow, uses
from tempoflow.definition import content_hash
from tempoflow.errors import ErrorItem


async def _plan_schemas(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    wanted = {s.ref: s.schema_ for s in bundle.schemas}
    used = uses(b for w in bundle.workflows for b in [w.draft, *(v.definition for v in w.versions)])
    refs = set(used.schemas) | uses_in_schemas(t.schema_ for t in bundle.eventTypes)
    refs |= uses_in_schemas(wanted.values())
    existing = await schema_data.resolve(session, ctx.tenant, set(wanted) | refs)
    for index, item in enumerate(bundle.schemas):
        ref, schema = item.ref, item.schema_
        if ref not in existing:
            plan.schemas.append((ref, schema))
            plan.summary.created["schemas"].append(ref)
        elif content_hash(existing[ref]) == content_hash(schema):
            plan.summary.unchanged["schemas"].append(ref)
        else:
            plan.conflicts.append(
                ErrorItem(
                    path=f"/schemas/{index}/schema",
                    code="schema_ref_conflict",
                    message=f"named schema {ref!r} exists with other content",
                    hint="named schemas are immutable (even with force): write the change "
                    "under a new ref",
                )
            )
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
            plan.event_types.append(wanted)
            plan.summary.created["eventTypes"].append(item.name)
        elif current == wanted:
            plan.summary.unchanged["eventTypes"].append(item.name)
        elif ctx.force:
            plan.event_types.append(wanted)
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
    disabled: list[str],
    ctx: ImportContext,
    plan: Plan,
) -> None:
    key = workflow.key
    wanted = workflow.model_dump(by_alias=True)
    if row is None or row.deleted_at is not None:
        # A new key keeps the bundle's numbers; a deleted key is re-created and its new
        # versions number on after the old ones (which stay for their runs' history).
        after = max((v.version for v in versions), default=0) if row is not None else None
        fresh = [
            VersionPlan(v.version, v.version if after is None else after + 1 + i, True)
            for i, v in enumerate(workflow.versions)
        ]
        plan.workflows.append(WorkflowPlan(workflow, row, fresh, write_meta=True))
        plan.summary.created["workflows"].append(key)
        plan.summary.created["versions"] += [
            {"key": key, "version": s.number, "bundleVersion": s.bundle_version} for s in fresh
        ]
        return
    if workflow_of(row, versions, disabled) == wanted:
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
    by_content = {version_key(v.body, v.action_defaults): v.version for v in versions}
    next_number = max((v.version for v in versions), default=0) + 1
    latest_key = version_key(versions[-1].body, versions[-1].action_defaults) if versions else None
    steps: list[VersionPlan] = []
    for v in workflow.versions:
        content = version_key(v.definition, v.actionDefaults)
        if content in by_content:
            steps.append(VersionPlan(v.version, by_content[content], False))
        else:
            steps.append(VersionPlan(v.version, next_number, True))
            by_content[content] = next_number
            latest_key = content
            next_number += 1
    if workflow.versions:
        last = workflow.versions[-1]
        if version_key(last.definition, last.actionDefaults) != latest_key:
            # The bundle's latest matches an older version here: publish it again, as
            # publishing that content would (version numbers only grow).
            steps.append(VersionPlan(last.version, next_number, True))
    meta = (row.name, row.description, row.draft, bool(row.paused), sorted(disabled))
    write_meta = meta != (
        workflow.name,
        workflow.description,
        workflow.draft,
        workflow.paused,
        workflow.disabledTriggers,
    )
    plan.workflows.append(WorkflowPlan(workflow, row, steps, write_meta))
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
    check_definitions(bundle, ctx, plan)
    await secret_warnings(session, bundle, ctx, plan)
    await check_schemas(session, bundle, ctx, plan)
    await check_dependencies(session, bundle, ctx, plan)
    await _plan_schemas(session, bundle, ctx, plan)
    await _plan_event_types(session, bundle, ctx, plan)
    keys = [w.key for w in bundle.workflows]
    found = await data.definitions(session, ctx.tenant, keys, for_update=lock, include_deleted=True)
    rows = {r.key: r for r in found}
    versions = await data.versions(session, ctx.tenant, list(rows))
    disabled = await data.disabled_triggers(session, ctx.tenant, list(rows))
    for index, workflow in enumerate(bundle.workflows):
        key = workflow.key
        _plan_workflow(
            index,
            workflow,
            rows.get(key),
            versions.get(key, []),
            disabled.get(key, []),
            ctx,
            plan,
        )
    return plan
