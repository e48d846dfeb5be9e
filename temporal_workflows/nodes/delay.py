"""``delay``: a durable Temporal timer for a duration or until a timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow

from tempoflow.definition import Delay
from tempoflow.error_types import ErrorType
from tempoflow.records import RunStatus
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.nodes.base import Runtime, StepOutcome


def _timestamp(value: object, path: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)  # epoch milliseconds, as $millis()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise StepFailure(
        ErrorType.EXPRESSION_ERROR,
        f"until must be an ISO 8601 timestamp or epoch milliseconds, got {value!r}",
        None,
        {"path": f"{path}/until"},
    )


async def execute(step: Delay, path: str, seq: int, ctx: RunContext, rt: Runtime) -> StepOutcome:
    if step.duration is not None:
        wait = step.duration
    else:
        assert step.until is not None
        until = _timestamp(ctx.evaluate(step.until, f"{path}/until"), path)
        wait = max(until - workflow.now(), timedelta(0))
    if wait > timedelta(0):
        await ctx.flush(RunStatus.WAITING)  # operators see the run waiting, not stuck
        await workflow.sleep(wait)
    return StepOutcome(output={"waitedSeconds": wait.total_seconds()})
