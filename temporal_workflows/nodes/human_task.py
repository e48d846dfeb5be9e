"""``human.task``: project an open task, wait for its completion (an Update validated
against the form) or its due time."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from temporalio import workflow

from tempoflow.definition import HumanTask
from tempoflow.error_types import ErrorType
from tempoflow.records import RunStatus, TaskRecord, TaskStatus
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.nodes.base import Runtime, StepOutcome

_TASK_NS = uuid.UUID("0b8e51f4-7f0c-4c55-8a7e-3f3f3c1f2d61")


def task_id(run_id: str, seq: int) -> str:
    """Stable per run and step sequence (replays and projection rewrites agree)."""
    return str(uuid.uuid5(_TASK_NS, f"{run_id}:{seq}"))


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text[:limit] if limit is not None else text


def texts(step: HumanTask, path: str, ctx: RunContext) -> dict[str, str | None]:
    """Title, description, assignee and role, resolved (each may be an expression) and
    cut to what the task list stores."""
    return {
        "title": _text(ctx.resolve(step.title, f"{path}/title")) or step.id,
        "description": _text(ctx.resolve(step.description, f"{path}/description")),
        "assignee": _text(ctx.resolve(step.assignee, f"{path}/assignee"), 256),
        "role": _text(ctx.resolve(step.role, f"{path}/role"), 64),
    }


async def execute(
    step: HumanTask, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    created = workflow.now()
    record = TaskRecord(
        id=task_id(ctx.inp.run_id, seq),
        tenant=ctx.inp.tenant,
        run_id=ctx.inp.run_id,
        workflow_id=ctx.workflow_id,
        seq=seq,
        step_path=path,
        definition_key=ctx.inp.definition_key,
        form=step.form,
        created_at=created,
        **texts(step, path, ctx),
        due_at=created + step.due if step.due is not None else None,
    )
    task = rt.tasks.open(record.id, step.form)
    ctx.shared.tasks.append(record)
    await ctx.flush(RunStatus.WAITING)  # the task is listed before anyone can complete it
    ctx.notify("waiting", step, path)
    timed_out = False
    try:
        await workflow.wait_condition(
            lambda: task.completion is not None,
            timeout=step.due.total_seconds() if step.due is not None else None,
        )
    except TimeoutError:
        timed_out = task.completion is None
    except asyncio.CancelledError:
        ctx.shared.tasks.append(record.model_copy(update={"status": TaskStatus.CANCELED}))
        raise
    finally:
        rt.tasks.close(record.id)
    if timed_out:
        ctx.shared.tasks.append(record.model_copy(update={"status": TaskStatus.TIMED_OUT}))
        if step.onTimeout == "fail":
            raise StepFailure(
                ErrorType.TIMEOUT_ERROR,
                f"task {record.title!r} was not completed within {step.due}",
                None,
                {"taskId": record.id},
            )
        if step.output:
            ctx.set_var(step.output, None)
        return StepOutcome(output={"taskId": record.id, "timedOut": True})
    done = task.completion
    assert done is not None and task.completed_at is not None
    ctx.shared.tasks.append(
        record.model_copy(
            update={
                "status": TaskStatus.COMPLETED,
                "completed_at": task.completed_at,
                "completed_by": done.completed_by,
                "data": done.data,
            }
        )
    )
    result = {
        "taskId": record.id,
        "data": done.data,
        "completedBy": done.completed_by,
        "completedAt": task.completed_at.isoformat(),
    }
    if step.output:
        ctx.set_var(step.output, result)
    return StepOutcome(output=result)
