"""Runs: start on Temporal, read from the projections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from app import run_control
from app.auth import Principal
from app.definition_errors import definition_deleted
from app.deps import Admin, Operator, SessionDep, SettingsDep, TemporalClientDep
from app.metrics import RUNS_CLOSED_BY_TEMPORAL
from app.pagination import decode_cursor, encode_cursor
from app.run_starter import describe_run, start_run
from app.schemas import (
    AttemptPublic,
    BulkControl,
    BulkControlPublic,
    BulkFailure,
    DecisionPublic,
    DecisionRequest,
    InvocationPublic,
    InvocationsPublic,
    RetryPublic,
    RunControlPublic,
    RunCreate,
    RunPublic,
    RunsPublic,
    StepPublic,
    StepsPublic,
    TerminateRequest,
    WaitPublic,
    WaitsPublic,
)
from projections import audit, definitions, invocations, redaction, routing, runs
from projections.models import RunRow
from tempoflow import jsonpointer
from tempoflow.definition.validation import instance_errors
from tempoflow.error_types import ErrorType
from tempoflow.errors import Conflict, ErrorItem, NotFound, Unprocessable
from tempoflow.ids import workflow_id
from tempoflow.jsonschema_safe import Unresolvable, UnusableSchema, safe_validator
from tempoflow.jsonsize import json_size
from tempoflow.records import RunStatus
from tempoflow.redaction import Redaction
from tempoflow.settings import Settings
from temporal_workflows.models import DECIDE_UPDATE, StepDecision

router = APIRouter(prefix="/v1/runs", tags=["runs"])
bulk_router = APIRouter(prefix="/v1", tags=["runs"])
"""Requests on many runs (``/v1/runs:cancel``, ``/v1/runs:terminate``)."""

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
        start_at=row.start_at,
        trigger=row.trigger,
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


MAX_START_DELAY = timedelta(days=365)
"""How far ahead ``startAt`` may be."""


def _check_start_at(start_at: datetime | None, now: datetime) -> None:
    if start_at is None:
        return
    if start_at <= now:
        problem, hint = "is not in the future", "omit startAt to start the run now"
    elif start_at - now > MAX_START_DELAY:
        problem, hint = (
            f"is more than {MAX_START_DELAY.days} days ahead",
            "start it later, or use a schedule trigger",
        )
    else:
        return
    raise Unprocessable(
        f"startAt {start_at.isoformat()} {problem}",
        code="start_at_invalid",
        hint=hint,
        errors=[ErrorItem(path="/startAt", code="start_at_invalid", message=problem)],
    )


async def ensure_run(session: AsyncSession, client: Client, tenant: str, run_id: str) -> None:
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
    """Start a run of a published version (latest when ``version`` is omitted); with
    ``startAt``, Temporal holds it until then and it is SCHEDULED meanwhile."""
    _check_start_at(body.start_at, datetime.now(UTC))
    definition = await definitions.get_definition(
        session, principal.tenant, body.definition, include_deleted=True
    )
    if definition is not None and definition.deleted_at is not None:
        raise definition_deleted(body.definition)
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
        start_at=body.start_at,
    )
    shown_input = Redaction.of_definition(version.body).payload(body.input)
    if started.created and body.start_at is not None:
        # Listed SCHEDULED at once (the run's own first write replaces it when it begins).
        await runs.record_scheduled(
            session,
            tenant=principal.tenant,
            run_id=started.run_id,
            workflow_id=started.workflow_id,
            definition_key=version.key,
            definition_version=version.version,
            input=shown_input,
            start_at=body.start_at,
        )
        await session.commit()
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
        status=_first_status(version.body, body.start_at),
        input=shown_input,
        start_at=body.start_at,
        source="temporal",
        temporal_ui_url=_ui_url(settings, started.workflow_id),
    )


def _first_status(body: dict[str, Any], start_at: datetime | None) -> RunStatus:
    """What a run just started is: SCHEDULED until ``startAt``; QUEUED when its
    definition has ``limits`` (it asks its gate for a slot before its first step, and is
    RUNNING once granted, at once when a slot is free); RUNNING otherwise."""
    if start_at is not None:
        return RunStatus.SCHEDULED
    return RunStatus.QUEUED if body.get("limits") else RunStatus.RUNNING


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
        await ensure_run(session, client, principal.tenant, run_id)
    return StepsPublic(items=[StepPublic.model_validate(s) for s in steps])


@router.get("/{run_id}/invocations", response_model=InvocationsPublic)
async def read_run_invocations(
    run_id: RunIdPath, principal: Operator, session: SessionDep, client: TemporalClientDep
) -> InvocationsPublic:
    """The run's action invocations: one per idempotency key, with every attempt."""
    rows = await invocations.list_invocations(session, principal.tenant, run_id)
    if not rows:
        await ensure_run(session, client, principal.tenant, run_id)
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
        await ensure_run(session, client, principal.tenant, run_id)
    return WaitsPublic(items=[WaitPublic.model_validate(w) for w in rows])


# Temporal's answer to a control request for a workflow id it holds no open execution of.
_NO_OPEN_EXECUTION = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT)


async def _refused(
    client: Client, tenant: str, run_id: str, what: str, described: dict[str, Any] | None = None
) -> Conflict | NotFound:
    """Why Temporal refused to ``what`` the run: it does not exist (404) or has ended."""
    described = described or await describe_run(client, tenant, run_id)
    if described is None:
        return NotFound(f"run {run_id!r} does not exist", code="run_not_found")
    status = described["status"]
    return Conflict(
        f"Temporal refused to {what} the run: it has ended ({status})",
        code=f"{what}_failed",
        hint="only a RUNNING or WAITING run can be controlled; GET /v1/runs/{id} shows it",
        extra={"runStatus": status},
    )


async def _ask(
    client: Client, tenant: str, run_id: str, what: str, call: Awaitable[object]
) -> None:
    """Ask Temporal for ``call`` on the run; it holding no open execution of the run is
    404 or 409 ``{what}_failed`` (other refusals and outages propagate: 422 / 503)."""
    try:
        await call
    except RPCError as err:
        if err.status not in _NO_OPEN_EXECUTION:
            raise
        raise await _refused(client, tenant, run_id, what) from None


async def _mirror_close(
    session: AsyncSession, tenant: str, run_id: str, status: RunStatus, reason: str
) -> None:
    """Mirror a close Temporal has confirmed (the reconciler would, a moment later)."""
    closed = await runs.close_from_temporal(
        session, tenant, run_id, status=status, closed_at=None, reason=reason
    )
    if closed and status == RunStatus.TERMINATED:
        RUNS_CLOSED_BY_TEMPORAL.labels(tenant, status).inc()


CANCELED_BEFORE_START = "canceled before it began"


async def _cancel_scheduled(
    client: Client, session: AsyncSession, principal: Principal, run_id: str, response: Response
) -> RunControlPublic:
    told = f"{CANCELED_BEFORE_START} (key {principal.key_id})"
    handle = client.get_workflow_handle(workflow_id(principal.tenant, run_id))
    await _ask(client, principal.tenant, run_id, "cancel", handle.terminate(reason=told))
    await _mirror_close(
        session, principal.tenant, run_id, RunStatus.CANCELED, f"the run was {told}"
    )
    await _audit(session, principal, "run.cancel", run_id, CANCELED_BEFORE_START)
    response.status_code = 200
    return RunControlPublic(id=run_id, status=RunStatus.CANCELED, action="canceled_before_start")


@router.post("/{run_id}/cancel", response_model=RunControlPublic, status_code=202)
async def cancel_run(
    run_id: RunIdPath,
    principal: Operator,
    client: TemporalClientDep,
    session: SessionDep,
    response: Response,
) -> RunControlPublic:
    """Ask Temporal to cancel the run. The run sees the cancellation at its next step
    boundary (in-flight actions are cancelled), runs its ``finally`` blocks and ends
    CANCELED; the projection shows it once the run has ended so. Repeating the request
    while the run is still open is harmless (202 again); once it has ended, 409
    ``cancel_failed`` with ``runStatus``. Temporal unreachable: 503, nothing changed.

    A SCHEDULED run (``startAt`` ahead) has not begun: nothing of it ran, so there is
    nothing to unwind. A Temporal cancel would start it at once (the delay is bypassed to
    deliver the request, and the run may do work before it sees it), so it is ended at
    once (a Temporal terminate with the reason "canceled before it began") and shows
    CANCELED (200, ``action: "canceled_before_start"``)."""
    handle = client.get_workflow_handle(workflow_id(principal.tenant, run_id))
    # Temporal accepts a repeated cancel of a closed run that was asked to cancel: look
    # first, so an ended run is a 409 whichever way it ended.
    described = await describe_run(client, principal.tenant, run_id)
    if described is not None and described["status"] == RunStatus.SCHEDULED:
        return await _cancel_scheduled(client, session, principal, run_id, response)
    if described is not None and described["status"] == RunStatus.TERMINATED:
        # Canceled before it began (terminated in Temporal): the projection says so.
        row = await runs.get_run(session, principal.tenant, run_id)
        if row is not None and row.status == RunStatus.CANCELED:
            described = {**described, "status": RunStatus.CANCELED}
    if described is None or described["status"] != RunStatus.RUNNING:
        raise await _refused(client, principal.tenant, run_id, "cancel", described)
    await _ask(client, principal.tenant, run_id, "cancel", handle.cancel())
    await _audit(session, principal, "run.cancel", run_id)
    return RunControlPublic(id=run_id, status=RunStatus.RUNNING, action="cancel_requested")


@router.post("/{run_id}/terminate", response_model=RunControlPublic)
async def terminate_run(
    run_id: RunIdPath,
    principal: Admin,
    client: TemporalClientDep,
    session: SessionDep,
    body: TerminateRequest | None = None,
) -> RunControlPublic:
    """End the run at once in Temporal (no ``finally``, no compensation; in-flight
    actions are abandoned). The projection shows TERMINATED as soon as Temporal confirms.
    Once the run has ended, 409 ``terminate_failed`` with ``runStatus``."""
    reason = (body or TerminateRequest()).reason
    wid = workflow_id(principal.tenant, run_id)
    told = f"{reason} (key {principal.key_id})"
    terminate = client.get_workflow_handle(wid).terminate(reason=told)
    await _ask(client, principal.tenant, run_id, "terminate", terminate)
    await _mirror_close(
        session,
        principal.tenant,
        run_id,
        RunStatus.TERMINATED,
        run_control.terminated_message(told),
    )
    await _audit(session, principal, "run.terminate", run_id, reason)
    return RunControlPublic(id=run_id, status=RunStatus.TERMINATED, action="terminated")


@router.post("/{run_id}/retry", response_model=RetryPublic)
async def retry_run(
    run_id: RunIdPath,
    principal: Operator,
    client: TemporalClientDep,
    session: SessionDep,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> RetryPublic:
    """Run a FAILED or TERMINATED run again from the step that failed (or was in flight),
    keeping everything before it: a Temporal reset. ``dryRun=true`` only says where it
    would resume. Once reset the run is RUNNING, so repeating the request is 409
    ``retry_not_possible`` until it has ended again."""
    described = await describe_run(client, principal.tenant, run_id)
    if described is None:
        raise NotFound(f"run {run_id!r} does not exist", code="run_not_found")
    status = described["status"]
    if status not in (RunStatus.FAILED, RunStatus.TERMINATED):
        raise Conflict(
            f"only a FAILED or TERMINATED run can be retried; this one is {status}",
            code="retry_not_possible",
            hint="cancel or terminate a run that is still open first",
            extra={"runStatus": status},
        )
    plan = await run_control.plan_retry(client, principal.tenant, run_id)
    if plan is None:
        raise Conflict(
            "the run has no workflow task to resume from",
            code="retry_not_possible",
            hint="start a new run with the same input",
            extra={"runStatus": status},
        )
    if dry_run:
        return RetryPublic(id=run_id, dry_run=True, status=status, resume_from=plan.public())
    # Open the projection first: the resumed execution's writes to a closed run would be
    # dropped. Should Temporal refuse the reset, the projection is closed again.
    before = await runs.reopen(session, principal.tenant, run_id)
    await session.commit()
    try:
        await run_control.reset(
            client,
            principal.tenant,
            run_id,
            plan,
            f"retried through the API (key {principal.key_id})",
        )
    except BaseException:
        if before is not None:
            await runs.restore(session, before)
            await session.commit()
        raise
    await _audit(session, principal, "run.retry", run_id, details=plan.public())
    return RetryPublic(
        id=run_id, dry_run=False, status=RunStatus.RUNNING, resume_from=plan.public()
    )


async def _audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    run_id: str,
    reason: str | None = None,
    details: Any = None,
) -> None:
    """Record what Temporal has done at the caller's request (and commit)."""
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action=action,
        target=run_id,
        reason=reason,
        details=details,
    )
    await session.commit()


BULK_CONCURRENCY = 10
"""Runs one bulk request asks Temporal about at once."""
BULK_SHOWN = 100


async def _bulk(
    what: Literal["cancel", "terminate"],
    body: BulkControl,
    principal: Principal,
    session: AsyncSession,
    client: Client,
    settings: Settings,
) -> BulkControlPublic:
    f = body.filter
    if f.definition is None and f.started_after is None and f.started_before is None:
        raise Unprocessable(
            "a bulk request needs a filter naming a definition or a start-time range",
            code="filter_required",
            errors=[ErrorItem(path="/filter", code="filter_required", message="too broad")],
            hint='e.g. {"filter": {"definition": "order-fulfilment", "status": "WAITING"}}',
        )
    if f.version is not None and f.definition is None:
        raise Unprocessable(
            "filter.version needs filter.definition",
            code="validation_failed",
            errors=[ErrorItem(path="/filter/version", code="needs_definition", message="")],
        )
    where = runs.OpenRunFilter(f.definition, f.version, f.status, f.started_after, f.started_before)
    matched, ids = await runs.select_open(
        session, principal.tenant, where, limit=settings.max_bulk_runs
    )
    # Temporal would start a delayed run at once to deliver a cancel: those not begun end
    # as a single cancel ends them (terminated before they begin, shown CANCELED).
    scheduled = (
        await runs.scheduled_among(session, principal.tenant, ids) if what == "cancel" else set()
    )
    await session.rollback()  # release the connection while Temporal is called
    if body.dry_run:
        return BulkControlPublic(dry_run=True, matched=matched, ids=ids[:BULK_SHOWN])
    if matched > settings.max_bulk_runs:
        raise Unprocessable(
            f"the filter selects {matched} runs; one request acts on at most "
            f"{settings.max_bulk_runs}",
            code="too_many_runs",
            hint="narrow the filter (a start-time range), or repeat the request",
            extra={"matched": matched},
        )
    limit = asyncio.Semaphore(BULK_CONCURRENCY)
    failed: list[BulkFailure] = []
    done: list[str] = []
    reason = body.reason or f"bulk {what} by an operator"
    told = f"{reason} (key {principal.key_id})"
    early = f"{CANCELED_BEFORE_START} (key {principal.key_id})"
    canceled_early: list[str] = []

    async def one(run_id: str) -> None:
        handle = client.get_workflow_handle(workflow_id(principal.tenant, run_id))
        async with limit:
            try:
                if run_id in scheduled:
                    await handle.terminate(reason=early)
                    canceled_early.append(run_id)
                elif what == "cancel":
                    await handle.cancel()
                else:
                    await handle.terminate(reason=told)
            except RPCError as err:
                code = "run_ended" if err.status in _NO_OPEN_EXECUTION else "temporal_unavailable"
                failed.append(BulkFailure(id=run_id, code=code, detail=err.message))
                return
        done.append(run_id)

    await asyncio.gather(*(one(run_id) for run_id in ids))
    for run_id in canceled_early:
        await _mirror_close(
            session, principal.tenant, run_id, RunStatus.CANCELED, f"the run was {early}"
        )
    if what == "terminate":
        for run_id in done:
            await _mirror_close(
                session,
                principal.tenant,
                run_id,
                RunStatus.TERMINATED,
                run_control.terminated_message(told),
            )
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action=f"runs.{what}",
        target=f.definition or "*",
        reason=body.reason,
        details={
            "filter": f.model_dump(mode="json", by_alias=True, exclude_none=True),
            "done": len(done),
            "failed": len(failed),
        },
    )
    await session.commit()
    return BulkControlPublic(
        dry_run=False, matched=matched, ids=ids[:BULK_SHOWN], done=len(done), failed=failed
    )


@bulk_router.post("/runs:cancel", response_model=BulkControlPublic)
async def cancel_runs(
    body: BulkControl,
    principal: Operator,
    session: SessionDep,
    client: TemporalClientDep,
    settings: SettingsDep,
) -> BulkControlPublic:
    """Ask Temporal to cancel every open run the filter selects (at most
    ``TEMPOFLOW_MAX_BULK_RUNS``); ``dryRun`` answers the count and ids first."""
    return await _bulk("cancel", body, principal, session, client, settings)


@bulk_router.post("/runs:terminate", response_model=BulkControlPublic)
async def terminate_runs(
    body: BulkControl,
    principal: Admin,
    session: SessionDep,
    client: TemporalClientDep,
    settings: SettingsDep,
) -> BulkControlPublic:
    """Terminate every open run the filter selects (admin); ``dryRun`` first."""
    return await _bulk("terminate", body, principal, session, client, settings)


@router.post("/{run_id}/steps/{step_path:path}/decision", response_model=DecisionPublic)
async def decide_step(
    run_id: RunIdPath,
    step_path: str,
    body: DecisionRequest,
    principal: Operator,
    session: SessionDep,
    client: TemporalClientDep,
) -> DecisionPublic:
    """Decide on an ``action.call`` with ``onFailure: "ask"`` whose retries are exhausted:
    ``retry`` (a whole retry budget again), ``skip`` (with ``output``) or ``fail``. The
    run validates it (a Temporal Update); the first decision wins, later ones are 409
    ``decision_already_made``; a step that waits for none is 409 ``decision_not_pending``.
    ``stepPath`` is the step's JSON pointer as ``/steps`` lists it, e.g.
    ``/v1/runs/{id}/steps/steps/2/decision`` (or percent-encoded)."""
    path = "/" + step_path.lstrip("/")
    decision = StepDecision(
        step_path=path,
        loop=".".join(str(i) for i in body.loop) if body.loop else None,
        decision=body.decision,
        output=body.output,
        decided_by=principal.key_id,
    )
    handle = client.get_workflow_handle(workflow_id(principal.tenant, run_id))
    try:
        await handle.execute_update(DECIDE_UPDATE, decision, result_type=dict)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.DECISION_ALREADY_MADE:
            details = cause.details[0] if cause.details else {}
            raise Conflict(
                "another decision on this step was made first",
                code="decision_already_made",
                hint="GET /v1/runs/{id}/steps shows what the step did",
                extra={"decidedBy": details.get("decidedBy")},
            ) from None
        raise Conflict(
            f"no step {path!r} of this run waits for a decision",
            code="decision_not_pending",
            hint='a step waits for one when it has onFailure: "ask" and its retries are '
            'exhausted; GET /v1/runs/{id}/steps shows error.decision: "pending"',
        ) from None
    except RPCError as err:
        if err.status not in _NO_OPEN_EXECUTION:
            raise
        raise await _refused(client, principal.tenant, run_id, "decide") from None
    await _audit(
        session,
        principal,
        "run.decision",
        run_id,
        body.reason,
        {"stepPath": path, "loop": body.loop, "decision": body.decision},
    )
    return DecisionPublic(id=run_id, step_path=path, decision=body.decision)
