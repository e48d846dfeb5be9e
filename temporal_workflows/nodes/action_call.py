"""``action.call``: run a registered action as an activity named after it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

from tempoflow.definition import ActionCall
from tempoflow.definition.action_options import (
    ActionOptions,
    parse_declared,
    parse_defaults,
    resolve_options,
)
from tempoflow.error_types import ErrorType
from tempoflow.records import RunStatus, StepStatus
from tempoflow.secrets import iter_references
from temporal_workflows.context import RunContext
from temporal_workflows.events import decision_key
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import (
    ActionFailure,
    ActionInvocation,
    ActionOutcome,
    BookkeepingInterrupted,
    StepDecision,
)
from temporal_workflows.nodes.base import Runtime, StepOutcome, to_completion

_CANCELLATION = {
    "tryCancel": ActivityCancellationType.TRY_CANCEL,
    "waitCompleted": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    "abandon": ActivityCancellationType.ABANDON,
}


async def _ask(
    step: ActionCall, path: str, seq: int, ctx: RunContext, rt: Runtime, failure: StepFailure
) -> StepDecision:
    """Wait (run ``WAITING``) for an operator's decision on the failed step."""
    failure.path = path
    error = {**failure.to_dict(), "decision": "pending"}
    key = decision_key(path, ctx.loop)
    pending = rt.decisions.open(key, error)
    ctx.record(
        ctx.step_record(
            seq,
            path,
            step,
            StepStatus.RUNNING,
            workflow.now(),
            attempt=failure.attempt,
            error=error,
        )
    )
    await ctx.flush(RunStatus.WAITING)
    ctx.notify("waiting", step, path, error=error)
    try:
        await workflow.wait_condition(lambda: pending.decision is not None)
    finally:
        rt.decisions.close(key)
    assert pending.decision is not None
    return pending.decision


def _key(step: ActionCall, path: str, ctx: RunContext) -> str:
    if step.idempotencyKey is None:
        return ctx.idempotency_key(path)
    value = ctx.evaluate(step.idempotencyKey, f"{path}/idempotencyKey")
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise StepFailure(
            ErrorType.EXPRESSION_ERROR,
            "idempotencyKey must be a non-empty string",
            None,
            {"path": f"{path}/idempotencyKey"},
        )
    return str(value)[:200]


BOOKKEEPING_PATCH = "tempoflow-bookkeeping-unavailable"
LOCAL_PATCH = "tempoflow-local-actions"
"""Guards scheduling pinned-local actions as local activities (a history recorded
without the marker replays with regular activities)."""
BOOKKEEPING_BACKOFF = timedelta(seconds=1)
BOOKKEEPING_MAX_BACKOFF = timedelta(minutes=2)


def _bookkeeping_interrupted(cause: Any) -> int | None:
    """The attempt an activity gave back before running the handler (the database was
    unreachable, or another run's attempt held the idempotency key)."""
    if isinstance(cause, ApplicationError) and cause.type == ErrorType.BOOKKEEPING_UNAVAILABLE:
        detail = _envelope(cause, BookkeepingInterrupted)
        if detail is not None:
            return detail.attempt
    return None


E = TypeVar("E", bound=BaseModel)


def _envelope(cause: ApplicationError, model: type[E]) -> E | None:
    """The typed details our activity put on ``cause`` (``None``: other details)."""
    detail = cause.details[0] if cause.details else None
    if not isinstance(detail, dict):
        return None
    try:
        return model.model_validate(detail)
    except ValidationError:
        return None


def _failure(cause: Any, path: str) -> StepFailure:
    if isinstance(cause, ApplicationError):
        # Our activity sends an ActionFailure; other failures pass as they are.
        envelope = _envelope(cause, ActionFailure)
        if envelope is not None:
            failure = StepFailure(
                cause.type or ErrorType.ACTION_ERROR, cause.message, None, envelope.details
            )
            failure.attempt = envelope.attempt
            return failure
        return StepFailure(
            cause.type or ErrorType.ACTION_ERROR, cause.message, None, list(cause.details) or None
        )
    if isinstance(cause, TimeoutError):
        return StepFailure(
            ErrorType.TIMEOUT_ERROR,
            f"action timed out ({cause.type.name.lower() if cause.type else 'timeout'})",
            None,
        )
    return StepFailure(ErrorType.ACTION_ERROR, str(cause), None)


def _options(step: ActionCall, path: str, ctx: RunContext) -> ActionOptions:
    """What the step's activity is scheduled with (step > definition > action >
    built-in); unreadable pinned defaults fail the step rather than the workflow task
    (which would retry forever)."""
    try:
        declared, local = parse_declared(ctx.inp.action_defaults.get(step.action))
        return resolve_options(
            step,
            parse_defaults(ctx.inp.definition.get("actionDefaults")),
            declared,
            local=local,
        )
    except ValidationError as err:
        raise StepFailure(
            ErrorType.DEFINITION_INVALID,
            f"the retry/timeout defaults of {step.action} are invalid: {err.error_count()} "
            "error(s)",
            None,
            err.errors(include_url=False, include_context=False),
            catchable=False,
        ) from None


async def execute(
    step: ActionCall, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    data = ctx.resolve(step.input, f"{path}/input")
    key = _key(step, path, ctx)
    if rt.patched:
        size = ctx.check_size(data, "the action's input")
        if size + ctx.pending_size() > ctx.inp.run_limits.max_payload_bytes:
            # The projection records waiting to ride along go first, on their own.
            await ctx.flush(ctx.shared.status)
    invocation = ActionInvocation(
        action=step.action,
        input=data,
        tenant=ctx.inp.tenant,
        run_id=ctx.inp.run_id,
        workflow_id=ctx.workflow_id,
        step_path=path,
        step_id=step.id,
        seq=seq,
        loop=ctx.loop,
        idempotency_key=key,
        pending=ctx.take_pending(),
        secrets=[path for path, _ in iter_references(step.input)],
        redact=ctx.shared.redact,
    )
    # Step > definition > action declaration > built-in, field by field, from the run's
    # pinned input only: runs without the new fields schedule exactly as before.
    options = _options(step, path, ctx)
    policy = options.retry
    # Only actions pinned local at publish; the patch marker keeps older histories (and
    # runs a worker without this code began) on regular activities when replayed.
    local = options.local and workflow.patched(LOCAL_PATCH)
    delay = BOOKKEEPING_BACKOFF
    budget_base = 0  # attempts before an operator's retry decision (a fresh budget)
    while True:
        retry_policy = RetryPolicy(
            maximum_attempts=policy.maxAttempts - (invocation.attempt_base - budget_base),
            initial_interval=policy.initialInterval,
            backoff_coefficient=policy.backoffCoefficient,
            maximum_interval=policy.maxInterval,
            non_retryable_error_types=policy.nonRetryableErrors or None,
        )
        summary = step.id if ctx.loop is None else f"{step.id} [{ctx.loop}]"
        if local:
            # The same timeouts and retry policy; the worker retries locally (backoff
            # past a minute becomes a durable timer), and the outcome is a marker.
            activity = workflow.execute_local_activity(
                step.action,
                invocation,
                result_type=ActionOutcome,
                start_to_close_timeout=options.start_to_close,
                schedule_to_close_timeout=options.schedule_to_close,
                retry_policy=retry_policy,
                cancellation_type=_CANCELLATION[step.cancellation],
                summary=summary,
            )
        else:
            activity = workflow.execute_activity(
                step.action,
                invocation,
                result_type=ActionOutcome,
                start_to_close_timeout=options.start_to_close,
                schedule_to_close_timeout=options.schedule_to_close,
                heartbeat_timeout=options.heartbeat,
                retry_policy=retry_policy,
                cancellation_type=_CANCELLATION[step.cancellation],
                summary=summary,
            )
        try:
            if step.cancellation == "tryCancel":
                outcome = await activity
            else:
                # The action may finish (or complete anyway) after the cancel request: the
                # step still ends cancelled, never as a result or a catchable failure.
                task, cancelled = await to_completion(activity)
                if cancelled:
                    raise asyncio.CancelledError()
                outcome = task.result()
            break
        except (ActivityError, ApplicationError, TimeoutError, CancelledError) as err:
            if not isinstance(err, ActivityError) and not local:
                raise
            # A local activity's failure may come as it is, not wrapped in ActivityError.
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                # The activity was cancelled because this step is (a cancelled run, a
                # sibling branch that failed): that is cancellation, not a catchable failure.
                raise asyncio.CancelledError() from None
            interrupted = _bookkeeping_interrupted(cause)
            if interrupted is None or not workflow.patched(BOOKKEEPING_PATCH):
                failure = _failure(cause, path)
                if step.onFailure != "ask":
                    raise failure from None
                decision = await _ask(step, path, seq, ctx, rt, failure)
                if decision.decision == "fail":
                    raise failure from None
                if decision.decision == "skip":
                    outcome = ActionOutcome(output=decision.output, attempt=failure.attempt or 1)
                    break
                # retry: attempts go on counting, with a whole retry budget again
                budget_base = failure.attempt or budget_base + policy.maxAttempts
                invocation = invocation.model_copy(
                    update={"attempt_base": budget_base, "pending": ctx.take_pending()}
                )
                continue
        # The attempt was given back before the handler ran (database unreachable, or
        # the key claimed by another run): it does not count; wait (durably) and
        # schedule the action again.
        invocation = invocation.model_copy(update={"attempt_base": interrupted - 1})
        await workflow.sleep(delay)
        delay = min(delay * 2, BOOKKEEPING_MAX_BACKOFF)
    if outcome.unrecorded is not None:
        ctx.shared.invocations.append(
            outcome.unrecorded.model_copy(update={"output": outcome.output})
        )
    if step.output is not None:
        ctx.set_var(step.output, outcome.output)
    # The activity projected the step's input when it started; keep it out of history.
    return StepOutcome(output=outcome.output, attempt=outcome.attempt)
