"""The interpreter workflow: one execution per run, walking the pinned definition."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from projections.records import ProjectionBatch, RunRecord, RunStatus, StepStatus
    from tempoflow.definition import parse_definition
    from temporal_workflows.context import RunContext
    from temporal_workflows.failures import RunReturned, StepFailure
    from temporal_workflows.models import PROJECT_ACTIVITY, WORKFLOW_NAME, RunInput, RunResult
    from temporal_workflows.nodes import EXECUTORS

_PROJECTION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


@workflow.defn(name=WORKFLOW_NAME)
class InterpreterWorkflow:
    """Runs a definition step by step; side effects only through activities."""

    def __init__(self) -> None:
        self._ctx: RunContext | None = None
        self._current: str | None = None

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        ctx = self._ctx = RunContext.in_workflow(inp)
        try:
            definition = parse_definition(inp.definition)
        except ValidationError as err:
            raise ApplicationError(
                f"definition {inp.definition_key} v{inp.definition_version} is invalid",
                err.errors(include_url=False, include_context=False),
                type="DefinitionInvalid",
                non_retryable=True,
            ) from None
        try:
            try:
                await self._run_block(definition.steps, "/steps")
                output: Any = (
                    ctx.vars
                    if definition.output is None
                    else ctx.resolve(definition.output, "/output")
                )
            except RunReturned as returned:
                output = returned.output
        except StepFailure as failure:
            if failure.path is None:
                failure.path = "/output"
            await self._flush(
                ctx.run_record(RunStatus.FAILED, error=failure.to_dict(), closed_at=workflow.now())
            )
            raise ApplicationError(
                failure.message, failure.to_dict(), type=failure.type, non_retryable=True
            ) from None
        except asyncio.CancelledError:
            await self._flush(ctx.run_record(RunStatus.CANCELED, closed_at=workflow.now()))
            raise
        await self._flush(
            ctx.run_record(RunStatus.SUCCEEDED, output=output, closed_at=workflow.now())
        )
        return RunResult(output=output)

    async def _run_block(self, steps: list[Any], base: str) -> None:
        for index, step in enumerate(steps):
            await self._run_step(step, f"{base}/{index}")

    async def _run_step(self, step: Any, path: str) -> None:
        ctx = self._ctx
        assert ctx is not None
        seq = ctx.next_seq()
        started = workflow.now()
        self._current = path

        def finish(status: StepStatus, **fields: Any) -> None:
            ctx.record(
                ctx.step_record(
                    seq, path, step, status, started, finished_at=workflow.now(), **fields
                )
            )

        try:
            outcome = await EXECUTORS[step.type](step, path, seq, ctx, self._run_block)
        except StepFailure as failure:
            if failure.path is None:
                failure.path = path
            finish(StepStatus.FAILED, attempt=None, error=failure.to_dict())
            raise
        except RunReturned as returned:
            # The return step itself carries the output; enclosing blocks just end.
            finish(
                StepStatus.SUCCEEDED,
                output=returned.output if step.type == "control.return" else None,
            )
            raise
        finish(
            StepStatus.SUCCEEDED,
            input=outcome.input,
            output=outcome.output,
            attempt=outcome.attempt,
        )

    async def _flush(self, run: RunRecord | None = None) -> None:
        assert self._ctx is not None
        batch: ProjectionBatch = self._ctx.take_pending(run)
        if batch.is_empty():
            return
        await workflow.execute_local_activity(
            PROJECT_ACTIVITY,
            batch,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=_PROJECTION_RETRY,
        )

    @workflow.query(name="tempoflow.state")
    def state(self) -> dict[str, Any]:
        """Current variables and step path (for operators)."""
        if self._ctx is None:
            return {"vars": {}, "currentStep": None}
        return {"vars": self._ctx.vars, "currentStep": self._current}
