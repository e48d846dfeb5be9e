"""``control.callWorkflow``: a child run of another published definition."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.workflow import ParentClosePolicy

from tempoflow.definition import ControlCallWorkflow
from tempoflow.error_types import ErrorType
from tempoflow.ids import workflow_id
from temporal_workflows import search_attributes as sa
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import (
    RESOLVE_DEFINITION_ACTIVITY,
    WORKFLOW_NAME,
    DefinitionRef,
    DefinitionRequest,
    RunInput,
    RunResult,
)
from temporal_workflows.nodes.base import Runtime, StepOutcome, to_completion


async def execute(
    step: ControlCallWorkflow, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    data = ctx.resolve(step.input, f"{path}/input")
    try:
        ref = await workflow.execute_activity(
            RESOLVE_DEFINITION_ACTIVITY,
            DefinitionRequest(tenant=ctx.inp.tenant, key=step.definition, version=step.version),
            result_type=DefinitionRef,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
    except ActivityError as err:
        cause = err.cause
        if rt.patched and isinstance(cause, CancelledError):
            raise asyncio.CancelledError() from None
        message = cause.message if isinstance(cause, ApplicationError) else str(err)
        raise StepFailure(ErrorType.DEFINITION_NOT_FOUND, message, None) from None
    child_run_id = str(workflow.uuid4())
    child_id = workflow_id(ctx.inp.tenant, child_run_id)
    child_input = RunInput(
        run_id=child_run_id,
        tenant=ctx.inp.tenant,
        definition_key=ref.key,
        definition_version=ref.version,
        definition=ref.body,
        action_defaults=ref.action_defaults,
        input=data,
        limits=ctx.inp.limits,
        run_limits=ctx.inp.run_limits,
        parent_run_id=ctx.inp.run_id,
        parent_step_path=path,
    )
    if rt.patched:
        ctx.check_size(child_input, "the child run's input")
    child = workflow.execute_child_workflow(
        WORKFLOW_NAME,
        child_input,
        id=child_id,
        result_type=RunResult,
        task_queue=workflow.info().task_queue,
        execution_timeout=step.timeout,
        parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        # Like the parent: with the attributes when the parent has them.
        search_attributes=sa.for_run(ctx.inp.tenant, ref.key, ref.version)
        if workflow.info().typed_search_attributes.get(sa.TENANT) is not None
        else None,
        static_summary=f"{ref.key} v{ref.version} (child of {ctx.inp.run_id})",
    )
    try:
        if rt.patched:
            # A cancelled parent cancels the child and waits for it to end: whatever the
            # child's outcome, this step is cancelled (never a catchable child failure).
            task, cancelled = await to_completion(child)
            if cancelled:
                raise asyncio.CancelledError()
            result = task.result()
        else:
            result = await child
    except ChildWorkflowError as err:
        cause = err.cause
        detail: dict[str, Any] = {"childRunId": child_run_id, "cause": None}
        if isinstance(cause, ApplicationError):
            child_error = cause.details[0] if cause.details else None
            detail["cause"] = (
                child_error
                if isinstance(child_error, dict)
                else {"type": cause.type, "message": cause.message}
            )
        raise StepFailure(
            ErrorType.CHILD_WORKFLOW_FAILED,
            f"child run {child_run_id} ({ref.key} v{ref.version}) failed: "
            f"{getattr(cause, 'message', None) or cause or err}",
            None,
            detail,
        ) from None
    if step.output is not None:
        ctx.set_var(step.output, result.output)
    return StepOutcome(
        input=data,
        output={"childRunId": child_run_id, "definition": ref.key, "version": ref.version},
    )
