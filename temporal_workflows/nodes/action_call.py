"""``action.call``: run a registered action as an activity named after it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from tempoflow.definition import ActionCall
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import ActionInvocation, ActionOutcome
from temporal_workflows.nodes.base import RunBlock, StepOutcome


async def execute(
    step: ActionCall, path: str, seq: int, ctx: RunContext, run_block: RunBlock
) -> StepOutcome:
    data = ctx.resolve(step.input, f"{path}/input")
    invocation = ActionInvocation(
        action=step.action,
        input=data,
        tenant=ctx.inp.tenant,
        run_id=ctx.inp.run_id,
        workflow_id=ctx.workflow_id,
        step_path=path,
        step_id=step.id,
        seq=seq,
        idempotency_key=ctx.idempotency_key(path),
        pending=ctx.take_pending(),
    )
    policy = step.retry
    try:
        outcome = await workflow.execute_activity(
            step.action,
            invocation,
            result_type=ActionOutcome,
            start_to_close_timeout=step.timeout,
            retry_policy=RetryPolicy(
                maximum_attempts=policy.maxAttempts,
                initial_interval=policy.initialInterval,
                backoff_coefficient=policy.backoffCoefficient,
                maximum_interval=policy.maxInterval,
                non_retryable_error_types=policy.nonRetryableErrors or None,
            ),
            summary=step.id,
        )
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise StepFailure(
                cause.type or "ActionError", cause.message, path, list(cause.details) or None
            ) from None
        if isinstance(cause, TimeoutError):
            raise StepFailure("TimeoutError", f"action timed out ({cause.type})", path) from None
        raise StepFailure("ActionError", str(cause or err), path) from None
    if step.output is not None:
        ctx.set_var(step.output, outcome.output)
    # The activity projected the step's input when it started; keep it out of history.
    return StepOutcome(output=outcome.output, attempt=outcome.attempt)
