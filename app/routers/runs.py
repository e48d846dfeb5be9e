"""Runs: start on Temporal, read from the projections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from app.deps import Operator, SessionDep, SettingsDep, TemporalClientDep
from app.pagination import decode_cursor, encode_cursor
from app.run_starter import describe_run, start_run
from app.schemas import (
    AttemptPublic,
    InvocationPublic,
    InvocationsPublic,
    RunCreate,
    RunPublic,
    RunsPublic,
    StepPublic,
    StepsPublic,
    WaitPublic,
    WaitsPublic,
)
from projections import definitions, invocations, redaction, routing, runs
from projections.models import RunRow
from tempoflow import jsonpointer
from tempoflow.definition.validation import instance_errors
from tempoflow.errors import ErrorItem, NotFound, Unprocessable
from tempoflow.ids import workflow_id
from tempoflow.jsonschema_safe import Unresolvable, UnusableSchema, safe_validator
from tempoflow.jsonsize import json_size
from tempoflow.records import RunStatus
from tempoflow.redaction import Redaction
from tempoflow.settings import Settings

router = APIRouter(prefix="/v1/runs", tags=["runs"])

RunIdPath = Annotated[str, Path(min_length=1, max_length=36)]


def _ui_url(settings: Settings, wid: str) -> str | None:
    if not settings.temporal_ui_url:
        return None
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/"
        f"{settings.temporal_namespace}/workflows/{quote(wid, safe='')}"
    )


def _public(row: RunRow, settings: Settings) -> RunPublic:
    return RunPublic(
        id=row.run_id,
        workflow_id=row.workflow_id,
        definition=row.definition_key,
        version=row.definition_version,
        status=row.status,
        input=row.input,
        output=row.output,
        error=row.error,
        started_at=row.started_at,
        closed_at=row.closed_at,
        parent_run_id=row.parent_run_id,
        temporal_ui_url=_ui_url(settings, row.workflow_id),
    )


def _check_input(data: Any, schema: dict[str, Any] | None, settings: Settings) -> None:
    size = json_size(data)
    if size > settings.max_run_input_bytes:
        raise Unprocessable(
            f"the run input is {size} bytes; the limit is {settings.max_run_input_bytes}",
            code="input_too_large",
            hint="pass a reference (URL, id) instead of the data",
            errors=[ErrorItem(path="/input", code="input_too_large", message="input too large")],
        )
    if schema is None:
        return
    try:
        errors = instance_errors(safe_validator(schema), data, "/input")
    except (Unresolvable, UnusableSchema) as err:
        raise Unprocessable(
            f"the definition's inputSchema cannot be used: {err}",
            code="input_schema_unusable",
            hint="$refs may only point inside the schema (#/$defs/…); patterns are RE2",
        ) from None
    if errors:
        raise Unprocessable(
            f"the run input does not match the definition's inputSchema ({len(errors)} error(s))",
            code="input_invalid",
            errors=errors,
            hint="GET /v1/definitions/{key}/versions/{n} shows the inputSchema",
        )


async def _ensure_run(session: AsyncSession, client: Client, tenant: str, run_id: str) -> None:
    """404 unless the run exists: in the projection, or else in Temporal (the authority),
    so a run started a moment ago is an empty page, not a 404."""
    if await runs.get_run(session, tenant, run_id) is not None:
        return
    await session.rollback()  # release the connection while Temporal is called
    if await describe_run(client, tenant, run_id) is None:
        raise NotFound(f"run {run_id!r} does not exist", code="run_not_found")


@router.post("", response_model=RunPublic, status_code=201)
async def create_run(
    body: RunCreate,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    response: Response,
) -> RunPublic:
    """Start a run of a published version (latest when ``version`` is omitted)."""
    definition = await definitions.get_definition(session, principal.tenant, body.definition)
    if definition is None:
        raise NotFound(
            f"definition {body.definition!r} does not exist",
            code="definition_not_found",
            hint="PUT /v1/definitions/{key} creates it; then publish it",
        )
    if body.version is None and definition.latest_version is None:
        raise NotFound(
            f"definition {body.definition!r} has no published version",
            code="definition_not_published",
            hint="POST /v1/definitions/{key}/publish first",
        )
    version = await definitions.published_version(
        session, principal.tenant, body.definition, body.version
    )
    if version is None:
        number = body.version or definition.latest_version
        raise NotFound(
            f"definition {body.definition!r} has no version {number}", code="version_not_found"
        )
    session.expunge(version)
    await session.rollback()  # release the connection while Temporal is called
    _check_input(body.input, version.body.get("inputSchema"), settings)
    started = await start_run(
        client,
        task_queue=settings.task_queue,
        tenant=principal.tenant,
        version=version,
        data=body.input,
        idempotency_key=body.idempotency_key,
        limits=settings.expression_limits,
        run_limits=settings.run_limits,
    )
    if not started.created:
        response.status_code = 200
        row = await runs.get_run(session, principal.tenant, started.run_id)
        if row is not None:
            return _public(row, settings)
    return RunPublic(
        id=started.run_id,
        workflow_id=started.workflow_id,
        definition=version.key,
        version=version.version,
        status=RunStatus.RUNNING,
        input=Redaction.of_definition(version.body).payload(body.input),
        source="temporal",
        temporal_ui_url=_ui_url(settings, started.workflow_id),
    )


@router.get("", response_model=RunsPublic)
async def read_runs(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    status: RunStatus | None = None,
    definition: str | None = None,
    parent: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> RunsPublic:
    """Runs of the caller's tenant, newest first."""
    size = min(limit or settings.default_page_size, settings.max_page_size)
    before = decode_cursor(cursor, (datetime, str))
    rows = await runs.list_runs(
        session,
        principal.tenant,
        limit=size + 1,
        status=status,
        definition=definition,
        parent=parent,
        before=(before[0], before[1]) if before else None,
    )
    next_cursor = None
    if len(rows) > size:
        last = rows[size - 1]
        next_cursor = encode_cursor([last.started_at.isoformat(), last.run_id])
    return RunsPublic(items=[_public(r, settings) for r in rows[:size]], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunPublic)
async def read_run(
    run_id: RunIdPath,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> RunPublic:
    row = await runs.get_run(session, principal.tenant, run_id)
    if row is not None:
        return _public(row, settings)
    # Not projected yet: ask Temporal, the authority (workflow ids carry the tenant).
    described = await describe_run(client, principal.tenant, run_id)
    if described is None:
        raise NotFound(f"run {run_id!r} does not exist", code="run_not_found")
    return RunPublic(
        **described, temporal_ui_url=_ui_url(settings, workflow_id(principal.tenant, run_id))
    )


@router.get("/{run_id}/steps", response_model=StepsPublic)
async def read_run_steps(
    run_id: RunIdPath, principal: Operator, session: SessionDep, client: TemporalClientDep
) -> StepsPublic:
    steps = await runs.list_steps(session, principal.tenant, run_id)
    if not steps:
        await _ensure_run(session, client, principal.tenant, run_id)
    return StepsPublic(items=[StepPublic.model_validate(s) for s in steps])


@router.get("/{run_id}/invocations", response_model=InvocationsPublic)
async def read_run_invocations(
    run_id: RunIdPath, principal: Operator, session: SessionDep, client: TemporalClientDep
) -> InvocationsPublic:
    """The run's action invocations: one per idempotency key, with every attempt."""
    rows = await invocations.list_invocations(session, principal.tenant, run_id)
    if not rows:
        await _ensure_run(session, client, principal.tenant, run_id)
    body = await redaction.run_definition(session, principal.tenant, run_id) if rows else None
    redact = Redaction.of_definition(body)
    items = []
    for invocation, attempts in rows:
        item = InvocationPublic.model_validate(invocation)
        item.attempt_log = [AttemptPublic.model_validate(a) for a in attempts]
        if redact:
            # Stored with its value (a deduplicated attempt returns it); masked when shown.
            step = jsonpointer.resolve(body, item.step_path)
            target = step.get("output") if isinstance(step, dict) else None
            item.output = redact.step_output(item.output, target=target)
        items.append(item)
    return InvocationsPublic(items=items)


@router.get("/{run_id}/waits", response_model=WaitsPublic)
async def read_run_waits(
    run_id: RunIdPath, principal: Operator, session: SessionDep, client: TemporalClientDep
) -> WaitsPublic:
    """The run's event waits: what it waits (or waited) for, and which event it took."""
    rows = await routing.list_waits(session, principal.tenant, run_id)
    if not rows:
        await _ensure_run(session, client, principal.tenant, run_id)
    return WaitsPublic(items=[WaitPublic.model_validate(w) for w in rows])
