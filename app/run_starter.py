"""Start runs on Temporal (the only authority) and read them back when not yet projected."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from expression.limits import ExpressionLimits
from projections.models import DefinitionVersionRow
from tempoflow.errors import Conflict
from tempoflow.ids import workflow_id
from tempoflow.limits import RunLimits
from temporal_workflows import search_attributes as sa
from temporal_workflows.models import WORKFLOW_NAME, RunInput

_IDEMPOTENCY_NS = uuid.UUID("6f1c2a47-3d4b-4f4e-9a55-2f0d8c1e7b10")

TEMPORAL_STATUS = {
    WorkflowExecutionStatus.RUNNING: "RUNNING",
    WorkflowExecutionStatus.COMPLETED: "SUCCEEDED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "RUNNING",
}


def run_priority(body: dict[str, Any]) -> Priority:
    """The definition's ``priority`` as Temporal's task priority (the default when unset):
    the run's workflow tasks and, inherited, its activities are dispatched by it."""
    key = body.get("priority") if isinstance(body, dict) else None
    return Priority(priority_key=key) if isinstance(key, int) else Priority.default


def run_id_for(tenant: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDEMPOTENCY_NS, f"{tenant}\x00{idempotency_key}"))


@dataclass(frozen=True)
class Started:
    run_id: str
    workflow_id: str
    created: bool
    handle: WorkflowHandle[Any, Any] | None = None
    """The started workflow (when this call started it)."""


def _request_hash(key: str, version: int, data: Any, start_at: datetime | None = None) -> str:
    request = [key, version, data]
    if start_at is not None:  # runs started at once keep the hashes they always had
        request.append(start_at.astimezone(UTC).isoformat())
    raw = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


async def start_run(
    client: Client,
    *,
    task_queue: str,
    tenant: str,
    version: DefinitionVersionRow,
    data: Any,
    idempotency_key: str | None,
    limits: ExpressionLimits | None = None,
    run_limits: RunLimits | None = None,
    search_attributes: bool = True,
    start_at: datetime | None = None,
) -> Started:
    """Start the interpreter for ``version``; the same idempotency key returns the same run.

    Temporal deduplicates by workflow id (derived from tenant + key) for the whole
    retention period, so the check is atomic without touching Postgres.
    ``search_attributes=False`` is for servers without custom search attributes (the
    time-skipping test server). ``start_at``: Temporal holds the run until then (its
    start delay); it is part of the request an idempotency key stands for.
    """
    run_id = run_id_for(tenant, idempotency_key)
    wid = workflow_id(tenant, run_id)
    request_hash = _request_hash(version.key, version.version, data, start_at)
    delay = None
    if start_at is not None:
        delay = max(start_at - datetime.now(UTC), timedelta(0))
    try:
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(
                run_id=run_id,
                tenant=tenant,
                definition_key=version.key,
                definition_version=version.version,
                definition=version.body,
                action_defaults=version.action_defaults or {},
                input=data,
                limits=limits or ExpressionLimits(),
                run_limits=run_limits or RunLimits(),
            ),
            id=wid,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=sa.for_run(tenant, version.key, version.version)
            if search_attributes
            else None,
            memo={"requestHash": request_hash},
            static_summary=f"{version.key} v{version.version}",
            start_delay=delay,
            priority=run_priority(version.body),
        )
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:
            raise
        desc = await client.get_workflow_handle(wid).describe()
        if await desc.memo_value("requestHash", default=None) != request_hash:
            raise Conflict(
                "this idempotency key was used for a different request",
                code="idempotency_key_reused",
                hint="use a new idempotencyKey, or repeat the original request unchanged",
                extra={"runId": run_id},
            ) from None
        return Started(run_id, wid, created=False)
    return Started(run_id, wid, created=True, handle=handle)


async def describe_run(client: Client, tenant: str, run_id: str) -> dict[str, Any] | None:
    """The run as Temporal sees it, for runs the projection has not caught up with."""
    wid = workflow_id(tenant, run_id)
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return None  # no such run (or an id Temporal cannot hold: none such either)
        raise
    attrs = desc.typed_search_attributes
    status = TEMPORAL_STATUS.get(desc.status, "RUNNING") if desc.status else "RUNNING"
    start_at = desc.execution_time
    if start_at is not None and (desc.start_time is None or start_at <= desc.start_time):
        start_at = None  # started at once
    if status == "RUNNING" and start_at is not None and start_at > datetime.now(UTC):
        status = "SCHEDULED"  # a delayed start Temporal still holds
    return {
        "id": run_id,
        "workflow_id": wid,
        "definition": attrs.get(sa.DEFINITION_KEY) or "",
        "version": attrs.get(sa.DEFINITION_VERSION) or 0,
        "status": status,
        "started_at": desc.start_time,
        "start_at": start_at,
        "closed_at": desc.close_time,
        "source": "temporal",
    }
