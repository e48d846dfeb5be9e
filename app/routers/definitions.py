"""Definitions: drafts, validation, immutable published versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from activities.channels import channels_for
from activities.registry import ActionRegistry
from app import schedules
from app.auth import Principal
from app.definition_errors import definition_deleted, definition_not_found
from app.deps import Publisher, Reader, RegistryDep, SessionDep, SettingsDep, TemporalClientDep
from app.pagination import keyed_page
from app.schema_refs import pinned_definition
from app.schemas import (
    DEFINITION_KEY,
    INT32_MAX,
    DefinitionDraft,
    DefinitionPublic,
    DefinitionsPublic,
    DefinitionSummary,
    DefinitionValidate,
    PublishedVersion,
    SchedulesPublic,
    ValidationReport,
    VersionPublic,
)
from projections import audit
from projections import definitions as data
from projections import secrets as secret_store
from projections import triggers as trigger_store
from projections.models import DefinitionRow, DefinitionVersionRow
from tempoflow.definition import (
    Issue,
    called_actions,
    parse_definition,
    validate_definition,
)
from tempoflow.definition.validation import secret_references, unknown_secret_issues
from tempoflow.errors import ErrorItem, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from tempoflow.jsonsize import json_size
from tempoflow.settings import Settings

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])

KeyPath = Annotated[str, Path(pattern=DEFINITION_KEY)]


async def existing(
    session: AsyncSession, tenant: str, key: str, *, for_update: bool = False
) -> DefinitionRow:
    """The definition, or 404 (never existed) / 410 (deleted) problems."""
    row = await data.get_definition(
        session, tenant, key, for_update=for_update, include_deleted=True
    )
    if row is None:
        raise definition_not_found(key)
    if row.deleted_at is not None:
        raise definition_deleted(key)
    return row


def _check_size(body: dict[str, Any], settings: Settings) -> None:
    size = json_size(body)
    if size > settings.max_definition_bytes:
        raise Unprocessable(
            f"the definition is {size} bytes; the limit is {settings.max_definition_bytes}",
            code="definition_too_large",
            errors=[
                ErrorItem(
                    path="/definition", code="definition_too_large", message="definition too large"
                )
            ],
            hint="split it into child workflows or raise TEMPOFLOW_MAX_DEFINITION_BYTES",
        )


async def _secret_warnings(
    session: AsyncSession, tenant: str, definition: dict[str, Any]
) -> list[Issue]:
    """Warnings for references to secrets the tenant does not have (not errors: the
    secret may be created before the step runs)."""
    refs = secret_references(definition)
    existing = await secret_store.existing_names(session, tenant, {name for _, name in refs})
    return unknown_secret_issues(refs, existing)


def _validate(
    definition: dict[str, Any], registry: ActionRegistry, extra: list[Issue] | None = None
) -> list[Issue]:
    """Validate; raise 422 with every error (and the warnings); return the warnings."""
    issues = validate_definition(
        definition,
        registry.names(),
        registry.input_schemas(),
        channels=channels_for(registry).requirements(),
    )
    issues += extra or []
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    if errors:
        raise Unprocessable(
            f"the definition has {len(errors)} error(s)",
            code="definition_invalid",
            errors=errors,
            extra={"warnings": [i.model_dump(exclude_none=True) for i in warnings]},
            hint="each error's path is a JSON pointer into the definition",
        )
    return warnings


def _action_steps(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """``(pointer, action name)`` of every action a valid definition calls."""
    return list(called_actions(parse_definition(definition)))


def _role_issues(
    definition: dict[str, Any], registry: ActionRegistry, principal: Principal
) -> list[Issue]:
    """The steps calling an action the caller's roles may not publish."""
    issues = []
    for path, name in _action_steps(definition):
        spec = registry.get(name)
        if spec is not None and not spec.may_publish(principal.roles):
            issues.append(
                Issue(
                    path=path,
                    code="action_not_permitted",
                    message=f"{name} may be published only by the roles "
                    f"{sorted((spec.publish_roles or frozenset()) | {'admin'})}",
                    hint=f"the key has roles {sorted(principal.roles)}",
                )
            )
    return issues


def _check_roles(
    definition: dict[str, Any], registry: ActionRegistry, principal: Principal
) -> None:
    """403 when the definition calls an action the caller's roles may not publish."""
    issues = _role_issues(definition, registry, principal)
    if issues:
        raise Forbidden(
            f"the definition calls {len(issues)} action step(s) this key may not publish",
            code="action_not_permitted",
            errors=issues,
            hint=f"the key has roles {sorted(principal.roles)}; GET /v1/actions shows each "
            "action's publishRoles",
        )


def _declared_defaults(definition: dict[str, Any], registry: ActionRegistry) -> dict[str, Any]:
    """The declared retry/timeout defaults of the actions the definition calls, and which
    of them are local (pinned with the version, so every run of it schedules the same
    way)."""
    return registry.pinned_defaults(definition)


@router.put("/{key}", response_model=DefinitionPublic)
async def update_definition(
    key: KeyPath,
    draft: DefinitionDraft,
    principal: Publisher,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> DefinitionPublic:
    """Create or replace the draft (drafts may be invalid; validate or publish checks)."""
    _check_size(draft.definition, settings)
    row, created = await data.upsert_draft(
        session,
        principal.tenant,
        key,
        name=draft.name,
        description=draft.description,
        body=draft.definition,
    )
    await session.commit()
    response.status_code = 201 if created else 200
    return DefinitionPublic.model_validate(row)


@router.get("", response_model=DefinitionsPublic)
async def read_definitions(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> DefinitionsPublic:
    rows, next_cursor = await keyed_page(
        lambda n, after: data.list_definitions(session, principal.tenant, limit=n, after=after),
        lambda row: row.key,
        limit=limit,
        cursor=cursor,
        default_size=settings.default_page_size,
        max_size=settings.max_page_size,
    )
    return DefinitionsPublic(
        items=[DefinitionSummary.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{key}", response_model=DefinitionPublic)
async def read_definition(key: KeyPath, principal: Reader, session: SessionDep) -> DefinitionPublic:
    row = await existing(session, principal.tenant, key)
    return DefinitionPublic.model_validate(row)


@router.post("/{key}/validate", response_model=ValidationReport)
async def validate_definition_draft(
    key: KeyPath,
    principal: Reader,
    session: SessionDep,
    registry: RegistryDep,
    settings: SettingsDep,
    body: Annotated[DefinitionValidate | None, Body()] = None,
) -> ValidationReport:
    """Validate the stored draft, or ``definition`` from the body; 422 lists every error."""
    definition = body.definition if body is not None else None
    if definition is None:
        row = await existing(session, principal.tenant, key)
        definition = row.draft
    _check_size(definition, settings)
    definition = await pinned_definition(session, principal.tenant, definition)
    extra = await _secret_warnings(session, principal.tenant, definition)
    warnings = _validate(definition, registry, extra)
    # Publishing with this key would be refused (403): say so ahead.
    warnings += [
        i.model_copy(update={"severity": "warning"})
        for i in _role_issues(definition, registry, principal)
    ]
    return ValidationReport(valid=True, warnings=warnings)


@router.post("/{key}/publish", response_model=PublishedVersion)
async def publish_definition(
    key: KeyPath,
    principal: Publisher,
    session: SessionDep,
    registry: RegistryDep,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
) -> PublishedVersion:
    """Publish the draft as immutable version N (same content as the latest: same N, 200).

    Then the version's schedule triggers become Temporal Schedules (created, updated, and
    deleted for triggers the version no longer has); publishing again repeats that."""
    row = await existing(session, principal.tenant, key, for_update=True)
    # The version pins the named schemas the draft refers to (runs never look them up).
    body = await pinned_definition(session, principal.tenant, row.draft)
    warnings = _validate(body, registry, await _secret_warnings(session, principal.tenant, body))
    _check_roles(row.draft, registry, principal)
    version, created = await data.publish(
        session,
        row,
        body=body,
        published_by=principal.key_id,
        action_defaults=_declared_defaults(row.draft, registry),
    )
    if created:
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="definition.publish",
            target=key,
            details={"version": version.version},
        )
    scheduled = {
        t.name
        for v in await data.list_versions(session, principal.tenant, key)
        for t in schedules.schedule_triggers(v.body)
        if t.name is not None
    }
    paused = row.paused
    off = set(await trigger_store.disabled(session, principal.tenant, key))
    await session.commit()
    await _sync_schedules(client, settings, version, paused, scheduled, off)
    response.status_code = 201 if created else 200
    published = PublishedVersion.model_validate(version)
    # Disabled triggers stay off across publications: say so rather than surprise.
    published.warnings = warnings + disabled_warnings(version.body, off)
    return published


async def _sync_schedules(
    client: TemporalClientDep,
    settings: Settings,
    version: DefinitionVersionRow,
    paused: bool,
    previous: set[str],
    disabled: set[str],
) -> None:
    try:
        await schedules.sync_schedules(
            client,
            version,
            paused=paused,
            disabled=disabled,
            previous=previous,
            task_queue=settings.task_queue,
            limits=settings.expression_limits,
            run_limits=settings.run_limits,
        )
    except RPCError as err:
        raise ServiceUnavailable(
            f"version {version.version} is published, but its schedules could not be "
            f"updated in Temporal: {err.message}",
            code="schedules_not_synced",
            hint="publish again: it repeats the schedule update",
            extra={"version": version.version},
        ) from err


@router.get("/{key}/schedules", response_model=SchedulesPublic)
async def read_schedules(
    key: KeyPath, principal: Reader, session: SessionDep, client: TemporalClientDep
) -> SchedulesPublic:
    """The schedule triggers of the latest published version, as Temporal sees them:
    paused or not, next run times, recent starts (with their run ids); ``enabled`` is
    false for a trigger an operator disabled."""
    row = await existing(session, principal.tenant, key)
    version = (
        await data.get_version(session, principal.tenant, key, row.latest_version)
        if row.latest_version
        else None
    )
    triggers = schedules.schedule_triggers(version.body) if version else []
    off = await trigger_store.disabled(session, principal.tenant, key)
    await session.rollback()  # release the connection while Temporal is called
    items = await schedules.describe_schedules(client, principal.tenant, key, triggers)
    return SchedulesPublic(items=[{**i, "enabled": i["trigger"] not in off} for i in items])


@router.get("/{key}/versions", response_model=list[VersionPublic])
async def read_versions(
    key: KeyPath, principal: Reader, session: SessionDep
) -> list[VersionPublic]:
    # A deleted definition's versions stay readable: its runs' history refers to them.
    if await data.get_definition(session, principal.tenant, key, include_deleted=True) is None:
        raise definition_not_found(key)
    return [
        VersionPublic.model_validate(v)
        for v in await data.list_versions(session, principal.tenant, key)
    ]


@router.get("/{key}/versions/{version}", response_model=VersionPublic)
async def read_version(
    key: KeyPath,
    version: Annotated[int, Path(ge=1, le=INT32_MAX)],
    principal: Reader,
    session: SessionDep,
) -> VersionPublic:
    row = await data.get_version(session, principal.tenant, key, version)
    if row is None:
        raise NotFound(f"definition {key!r} has no version {version}", code="version_not_found")
    return VersionPublic.model_validate(row)


async def _pause(
    key: str, principal: Principal, session: SessionDep, paused: bool, client: TemporalClientDep
) -> DefinitionPublic:
    row = await existing(session, principal.tenant, key, for_update=True)
    if row.paused != paused:
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="definition.pause" if paused else "definition.resume",
            target=key,
        )
    await data.set_paused(session, row, paused)
    version = (
        await data.get_version(session, principal.tenant, key, row.latest_version)
        if row.latest_version
        else None
    )
    off = await trigger_store.disabled(session, principal.tenant, key)
    # A disabled trigger's schedule stays paused whatever the definition does.
    names = (
        [t.name for t in schedules.schedule_triggers(version.body) if t.name and t.name not in off]
        if version
        else []
    )
    public = DefinitionPublic.model_validate(row)
    await session.commit()
    try:
        await schedules.pause_schedules(client, principal.tenant, key, names, paused)
    except RPCError as err:
        raise ServiceUnavailable(
            f"the definition is {'paused' if paused else 'resumed'}, but its schedules could "
            f"not be updated in Temporal: {err.message}",
            code="schedules_not_synced",
            hint="repeat the request: it repeats the schedule update",
        ) from err
    return public


@router.post("/{key}/pause", response_model=DefinitionPublic)
async def pause_definition(
    key: KeyPath, principal: Publisher, session: SessionDep, client: TemporalClientDep
) -> DefinitionPublic:
    """Stop the definition's triggers from starting runs (runs can still be started): event
    triggers stop matching and its Temporal Schedules are paused."""
    return await _pause(key, principal, session, True, client)


@router.post("/{key}/resume", response_model=DefinitionPublic)
async def resume_definition(
    key: KeyPath, principal: Publisher, session: SessionDep, client: TemporalClientDep
) -> DefinitionPublic:
    """Let the definition's triggers start runs again (events received while paused are not
    replayed; schedule times that passed while paused start nothing); triggers disabled
    one by one stay off."""
    return await _pause(key, principal, session, False, client)


def disabled_warnings(body: dict[str, Any], off: set[str]) -> list[Issue]:
    """A warning per trigger of ``body`` that an operator has disabled."""
    return [
        Issue(
            path=f"/triggers/{i}",
            code="trigger_disabled",
            severity="warning",
            message=f"trigger {t['name']!r} is disabled and stays off in this version",
            hint=f"POST /v1/definitions/{{key}}/triggers/{t['name']}/enable turns it on",
        )
        for i, t in enumerate(body.get("triggers") or [])
        if isinstance(t, dict) and t.get("name") in off
    ]
