"""Human tasks: list, read, complete (a Temporal Update validated by the run)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from app.deps import Operator, Reader, SessionDep, SettingsDep, TemporalClientDep
from app.pagination import decode_cursor, encode_cursor
from app.schemas import TaskComplete, TaskPublic, TasksPublic
from projections import tasks
from projections.models import HumanTaskRow
from tempoflow.error_types import ErrorType
from tempoflow.errors import Conflict, NotFound, Unprocessable
from tempoflow.records import TaskStatus
from temporal_workflows.models import COMPLETE_TASK_UPDATE, TaskCompletion

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskIdPath = Annotated[str, Path(min_length=1, max_length=36)]


async def _task(session: AsyncSession, tenant: str, task_id: str) -> HumanTaskRow:
    row = await tasks.get_task(session, tenant, task_id)
    if row is None:
        raise NotFound(f"task {task_id!r} does not exist", code="task_not_found")
    return row


@router.get("", response_model=TasksPublic)
async def list_tasks(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[str | None, Query(pattern="^(OPEN|COMPLETED|TIMED_OUT|CANCELED)$")] = None,
    assignee: str | None = None,
    role: str | None = None,
    definition: str | None = None,
    run_id: Annotated[str | None, Query(alias="runId")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> TasksPublic:
    """Newest first, filtered by status, assignee, role, definition or run."""
    size = min(limit or settings.default_page_size, settings.max_page_size)
    after = decode_cursor(cursor, (datetime, str))
    rows = await tasks.list_tasks(
        session,
        principal.tenant,
        limit=size + 1,
        before=(after[0], after[1]) if after else None,
        status=status,
        assignee=assignee,
        role=role,
        definition=definition,
        run_id=run_id,
    )
    page = rows[:size]
    return TasksPublic(
        items=[TaskPublic.model_validate(r) for r in page],
        next_cursor=encode_cursor([page[-1].created_at.isoformat(), page[-1].id])
        if len(rows) > size
        else None,
    )


@router.get("/{task_id}", response_model=TaskPublic)
async def get_task(task_id: TaskIdPath, principal: Reader, session: SessionDep) -> TaskPublic:
    return TaskPublic.model_validate(await _task(session, principal.tenant, task_id))


SETTLE_POLLS = 10
"""How many times (0.2 s apart) a refused completion checks for the task's projection to settle."""


def _closed(row: HumanTaskRow, status: str) -> Conflict:
    return Conflict(
        f"task {row.id!r} is {status.lower().replace('_', ' ')}",
        code="task_not_open",
        hint="only an OPEN task can be completed; GET /v1/tasks/{id} shows who completed it",
        extra={"taskStatus": status},
    )


async def _settled_status(session: AsyncSession, row: HumanTaskRow) -> str:
    """The status of a task the run no longer holds open: its projection, given the
    documented delay to catch up (``CLOSED`` if it has not by then)."""
    for _ in range(SETTLE_POLLS):
        status = await tasks.task_status(session, row.tenant, row.id)
        await session.rollback()
        if status is not None and status != TaskStatus.OPEN:
            return str(status)
        await asyncio.sleep(0.2)
    return "CLOSED"


@router.post("/{task_id}/complete", response_model=TaskPublic)
async def complete_task(
    task_id: TaskIdPath,
    body: TaskComplete,
    principal: Operator,
    session: SessionDep,
    client: TemporalClientDep,
) -> TaskPublic:
    """Complete the task with form data. The run validates the data against the form
    (422 lists every error); the first completion wins (409 afterwards)."""
    row = await _task(session, principal.tenant, task_id)
    session.expunge(row)
    await session.rollback()  # release the connection while Temporal is called
    if row.status != TaskStatus.OPEN:
        raise _closed(row, row.status)
    completion = TaskCompletion(
        task_id=task_id, data=body.data, completed_by=body.completed_by or principal.key_id
    )
    try:
        result = await client.get_workflow_handle(row.workflow_id).execute_update(
            COMPLETE_TASK_UPDATE, completion, result_type=dict
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.TASK_DATA_INVALID:
            raise Unprocessable(
                cause.message,
                code="task_data_invalid",
                errors=list(cause.details[0]) if cause.details else [],
                hint="GET /v1/tasks/{id} shows the form (a JSON Schema)",
            ) from None
        if getattr(cause, "type", "") == ErrorType.TASK_ALREADY_COMPLETED:
            raise _closed(row, TaskStatus.COMPLETED) from None
        raise _closed(row, await _settled_status(session, row)) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # the run has closed
            raise _closed(row, await _settled_status(session, row)) from None
        raise
    row.status = TaskStatus.COMPLETED
    row.data = body.data
    row.completed_by = result["completedBy"]
    row.completed_at = result["completedAt"]
    return TaskPublic.model_validate(row)
