"""Bundles: export definitions with their versions, event types and named schemas as one
canonical document; import one in a single transaction (see docs/bundles.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import StringConstraints, ValidationError
from temporalio.service import RPCError

from app import bundles, schedules
from app.deps import Admin, Reader, RegistryDep, SessionDep, SettingsDep, TemporalClientDep
from app.routers.event_types import _check as event_type_errors
from app.routers.schemas import MAX_SCHEMA_BYTES
from app.schemas import DEFINITION_KEY, BundleImportPublic, EventTypeWrite
from projections import audit
from projections.workers import action_presence
from tempoflow.bundle import (
    FORMAT_VERSION,
    Bundle,
    FormatVersionError,
    bundle_json_schema,
    canonical_json,
    parse_bundle,
)
from tempoflow.definition import content_hash
from tempoflow.errors import Conflict, ErrorItem, NotFound, ServiceUnavailable, Unprocessable

router = APIRouter(prefix="/v1", tags=["bundles"])

IMPORT_PATH = "/v1/definitions:import"


@router.get(
    "/definitions:export",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "The bundle"},
        404: {
            "description": "A definition named by key does not exist (each is listed)",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        },
    },
)
async def export_definitions(
    principal: Reader,
    session: SessionDep,
    registry: RegistryDep,
    key: Annotated[
        list[Annotated[str, StringConstraints(pattern=DEFINITION_KEY)]] | None,
        Query(max_length=1000),
    ] = None,
) -> Response:
    """The bundle of the definitions ``key`` names (repeat it), or of every definition:
    canonical JSON (sorted keys, 2-space indent, final newline)."""
    bundle, missing = await bundles.export_bundle(session, principal.tenant, key, registry)
    if missing:
        raise NotFound(
            f"{len(missing)} definition(s) do not exist",
            code="definition_not_found",
            errors=[
                ErrorItem(path="query:/key", code="definition_not_found", message=k)
                for k in missing
            ],
        )
    return Response(canonical_json(bundle), media_type="application/json")


@router.get(
    "/schemas/bundle.json",
    response_class=Response,
    responses={200: {"content": {"application/schema+json": {}}}},
)
async def read_bundle_schema(principal: Reader) -> Response:
    """The bundle format's JSON Schema (the repository's ``schemas/bundle.v1.json``)."""
    return Response(canonical_json(bundle_json_schema()), media_type="application/schema+json")


def _event_type_issues(bundle: Bundle) -> list[ErrorItem]:
    """What ``PUT /v1/event-types/{name}`` would refuse in the bundle's event types."""
    found: list[ErrorItem] = []
    for index, item in enumerate(bundle.eventTypes):
        try:
            write = EventTypeWrite.model_validate(
                {
                    "description": item.description,
                    "schema": item.schema_,
                    "correlation": item.correlation,
                    "bufferTtl": timedelta(seconds=item.bufferTtlSeconds),
                }
            )
        except ValidationError as err:
            found += [
                ErrorItem(
                    path=f"/eventTypes/{index}/" + "/".join(str(p) for p in e["loc"]),
                    code=f"event_type.{e['type']}",
                    message=e["msg"],
                )
                for e in err.errors()
            ]
            continue
        found += [
            ErrorItem.model_validate({**e, "path": f"/eventTypes/{index}{e['path']}"})
            for e in event_type_errors(write)
        ]
    return found


def _document(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise Unprocessable(
            f"the bundle is not JSON: {err}",
            code="bundle_invalid",
            errors=[ErrorItem(path="", code="bundle.json_invalid", message=str(err))],
            hint="send the file GET /v1/definitions:export wrote",
        ) from None


@router.post(
    "/definitions:import",
    response_model=BundleImportPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "a bundle (its JSON Schema: GET /v1/schemas/bundle.json)",
                    }
                }
            },
        }
    },
)
async def import_definitions(
    request: Request,
    principal: Admin,
    session: SessionDep,
    registry: RegistryDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    force: bool = False,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> BundleImportPublic:
    """Import a bundle in one transaction (admin). Create-only by default: a key that
    exists with other content is 409 ``definition_key_conflict`` (every one listed);
    ``force=true`` replaces drafts, metadata and triggers and adds versions whose content
    is new (existing versions stay, runs keep theirs); ``dryRun=true`` answers the
    summary without writing. Every error at once; a failed import writes nothing."""
    try:
        bundle, errors = parse_bundle(_document(await request.body()))
    except FormatVersionError as err:
        raise Unprocessable(
            f"this bundle needs format version {err.needed!r}; this server reads format "
            f"version {FORMAT_VERSION}",
            code="bundle_format_unsupported",
            errors=[
                ErrorItem(
                    path="/formatVersion",
                    code="bundle_format_unsupported",
                    message=f"format version {err.needed!r} is not supported",
                )
            ],
            extra={"formatVersion": err.needed, "supportedFormatVersions": [FORMAT_VERSION]},
            hint=f"upgrade Tempoflow to one that reads format version {err.needed!r}, or "
            "export the bundle again from a server of this version",
        ) from None
    if bundle is None or errors:
        raise Unprocessable(
            f"the bundle has {len(errors)} error(s)",
            code="bundle_invalid",
            errors=errors,
            hint="each error's path is a JSON pointer into the bundle; GET "
            "/v1/schemas/bundle.json is its JSON Schema",
        )
    presence = await action_presence(
        session, settings.task_queue, timedelta(seconds=settings.worker_presence_seconds)
    )
    ctx = bundles.ImportContext(
        tenant=principal.tenant,
        registry=registry,
        available_actions={name for name, p in presence.items() if p.available},
        force=force,
        max_definition_bytes=settings.max_definition_bytes,
        max_schema_bytes=MAX_SCHEMA_BYTES,
    )
    plan = await bundles.plan_import(session, bundle, ctx, lock=not dry_run)
    plan.errors = _event_type_issues(bundle) + plan.errors
    if plan.errors:
        found = plan.errors + plan.conflicts
        raise Unprocessable(
            f"the bundle cannot be imported: {len(found)} error(s)",
            code="bundle_invalid",
            errors=found,
            extra={"warnings": [w.model_dump(exclude_none=True) for w in plan.summary.warnings]},
            hint="each error's path is a JSON pointer into the bundle; nothing was written",
        )
    if plan.conflicts:
        paths = {c.path for c in plan.conflicts}
        keys = [w.key for i, w in enumerate(bundle.workflows) if f"/workflows/{i}/key" in paths]
        raise Conflict(
            f"{len(plan.conflicts)} item(s) of the bundle exist with other content",
            code="definition_key_conflict",
            errors=plan.conflicts,
            extra={"keys": keys},
            hint="import with force=true to replace them; nothing was written",
        )
    summary = BundleImportPublic.model_validate(plan.summary.to_json(dry_run=dry_run, force=force))
    if dry_run:
        await session.rollback()
        return summary
    changed = await bundles.apply_import(
        session,
        plan,
        principal.tenant,
        principal.key_id,
        lambda body: [t.name for t in schedules.schedule_triggers(body) if t.name],
    )
    for wp in plan.workflows:
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="definition.import",
            target=wp.workflow.key,
            details={
                "force": force,
                "versions": [s.number for s in wp.versions if s.create],
            },
        )
    for ref, schema in plan.schemas:
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="schema.create",
            target=ref,
            details={"contentHash": content_hash(schema), "via": "bundle.import"},
        )
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action="bundle.import",
        target="*",
        details={
            "force": force,
            **{
                what: {kind: len(items) for kind, items in getattr(plan.summary, what).items()}
                for what in ("created", "updated", "unchanged")
            },
        },
    )
    await session.commit()
    for item in plan.event_types:
        request.app.state.event_types.pop((principal.tenant, item["name"]), None)
    await _sync_schedules(client, settings, changed)
    return summary


async def _sync_schedules(
    client: TemporalClientDep, settings: SettingsDep, changed: list[bundles.Published]
) -> None:
    failed: list[ErrorItem] = []
    for item in changed:
        try:
            await schedules.sync_schedules(
                client,
                item.version,
                paused=item.paused,
                previous=item.previous,
                task_queue=settings.task_queue,
                limits=settings.expression_limits,
                run_limits=settings.run_limits,
                disabled=item.disabled,
            )
        except RPCError as err:
            failed.append(
                ErrorItem(path=item.version.key, code="schedules_not_synced", message=err.message)
            )
    if failed:
        raise ServiceUnavailable(
            "the bundle is imported, but the schedules of some workflows could not be "
            "updated in Temporal",
            code="schedules_not_synced",
            errors=failed,
            hint="publish those definitions again (POST /v1/definitions/{key}/publish "
            "repeats the schedule update)",
        )
