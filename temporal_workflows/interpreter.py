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

    from projections.records import (
        DEFERRED_REASON,
        DeliveryRecord,
        DeliveryStatus,
        RunRecord,
        RunStatus,
        StepStatus,
        WaitRecord,
    )
    from tempoflow.definition import parse_definition
    from temporal_workflows import events
    from temporal_workflows.context import RunContext
    from temporal_workflows.events import Mailbox, TaskBoard
    from temporal_workflows.failures import ContinueAsNew, RunReturned, StepFailure, position_key
    from temporal_workflows.models import (
        COMPLETE_TASK_UPDATE,
        EVENT_SIGNAL,
        PROJECT_ACTIVITY,
        REGISTER_WAIT_ACTIVITY,
        WORKFLOW_NAME,
        EventDelivery,
        RegisterWait,
        ResumeState,
        RunInput,
        RunResult,
        TaskCompletion,
    )
    from temporal_workflows.nodes import EXECUTORS, Runtime

_PROJECTION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
DEFAULT_MAX_HISTORY = 5_000
"""Continue as new past this many events even when Temporal does not suggest it yet
(Temporal's hard limit is 51,200; the goal is small histories that replay fast)."""


@workflow.defn(name=WORKFLOW_NAME)
class InterpreterWorkflow:
    """Runs a definition step by step; side effects only through activities."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self._ctx: RunContext | None = None
        self._current: str | None = None
        self._max_history = DEFAULT_MAX_HISTORY
        # Signal and update handlers run before ``run`` in the first activation: their
        # state (with what a continued run carried over) exists before them.
        self._refusals: list[DeliveryRecord] = []
        self._mailbox = Mailbox(on_refused=self._refused)
        self._inp = inp
        self._tasks = TaskBoard()
        if inp.resume is not None:
            self._mailbox.restore(inp.resume.processed_events, inp.resume.inbox)

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        ctx = self._ctx = RunContext.in_workflow(inp)
        ctx.shared.flush = self._flush_status
        ctx.shared.deliveries.extend(self._refusals)  # refused before ``run`` began
        positions: dict[str, Any] = {}
        if inp.resume is not None:
            ctx.vars = dict(inp.resume.vars)
            ctx.shared.seq = inp.resume.seq
            ctx.shared.run_sent = True
            positions = dict(inp.resume.positions)
        rt = Runtime(
            self._run_block,
            positions,
            self._should_continue,
            mailbox=self._mailbox,
            tasks=self._tasks,
            register_wait=self._register_wait,
        )
        self._rt = rt
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
                await self._run_block(definition.steps, "/steps", ctx)
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
        except ContinueAsNew as can:
            await self._flush()
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                inp.model_copy(
                    update={
                        "started_at": ctx.started_at,
                        "resume": ResumeState(
                            vars=ctx.vars,
                            seq=ctx.shared.seq,
                            positions=can.positions,
                            processed_events=self._mailbox.processed,
                            inbox=self._mailbox.inbox,
                        ),
                    }
                )
            )
        except asyncio.CancelledError:
            await self._flush(ctx.run_record(RunStatus.CANCELED, closed_at=workflow.now()))
            raise
        await self._flush(
            ctx.run_record(RunStatus.SUCCEEDED, output=output, closed_at=workflow.now())
        )
        return RunResult(output=output)

    def _should_continue(self, ctx: RunContext) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._max_history
            # Temporal caps signals per execution (patched only when it applies).
            or (
                self._mailbox.signals >= events.MAX_SIGNALS
                and workflow.patched("tempoflow.continue-on-signals")
            )
        )

    async def _run_block(self, steps: list[Any], base: str, ctx: RunContext) -> None:
        key = position_key(base, ctx.loop)
        start = self._rt.resume(key) or 0
        for index in range(start, len(steps)):
            if index > start and self._rt.blocked == 0 and self._should_continue(ctx):
                can = ContinueAsNew()
                can.positions[key] = index
                raise can
            try:
                await self._run_step(steps[index], f"{base}/{index}", ctx)
            except ContinueAsNew as can:
                can.positions[key] = index  # resume inside this (container) step
                raise

    async def _run_step(self, step: Any, path: str, ctx: RunContext) -> None:
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
            outcome = await EXECUTORS[step.type](step, path, seq, ctx, self._rt)
        except StepFailure as failure:
            if failure.path is None:
                failure.path = path
            finish(StepStatus.FAILED, attempt=failure.attempt, error=failure.to_dict())
            raise
        except RunReturned as returned:
            # The return step itself carries the output; enclosing blocks just end.
            finish(
                StepStatus.SUCCEEDED,
                output=returned.output if step.type == "control.return" else None,
            )
            raise
        except asyncio.CancelledError:
            finish(StepStatus.CANCELED, attempt=None)
            raise
        finish(
            StepStatus.SUCCEEDED,
            input=outcome.input,
            output=outcome.output,
            attempt=outcome.attempt,
        )

    async def _flush_status(self, status: RunStatus) -> None:
        """Project a status change of a running run (WAITING before a timer or a wait)."""
        assert self._ctx is not None
        self._ctx.shared.status = status
        await self._flush(self._ctx.run_record(status))

    async def _flush(self, run: RunRecord | None = None) -> None:
        assert self._ctx is not None
        batch = self._ctx.take_pending(run)
        if batch.is_empty():
            return
        await workflow.execute_local_activity(
            PROJECT_ACTIVITY,
            batch,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=_PROJECTION_RETRY,
        )

    async def _register_wait(self, wait: WaitRecord, after: int = 0) -> list[EventDelivery]:
        """Index the wait (with the pending projections and the WAITING status) under the
        routing lock; returns the buffered events of its key, oldest first."""
        assert self._ctx is not None
        self._ctx.shared.status = RunStatus.WAITING
        batch = self._ctx.take_pending(self._ctx.run_record(RunStatus.WAITING))
        limit, size = self._mailbox.budget(wait.event_names, wait.correlation_key)
        return await workflow.execute_local_activity(
            REGISTER_WAIT_ACTIVITY,
            RegisterWait(
                wait=wait,
                pending=batch,
                buffered_limit=limit,
                buffered_bytes=size,
                after_seq=after,
            ),
            result_type=list[EventDelivery],
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=_PROJECTION_RETRY,
        )

    @workflow.signal(name=EVENT_SIGNAL)
    def deliver_event(self, event: EventDelivery) -> None:
        """An event routed to one of this run's waits (at least once; applied once)."""
        self._mailbox.receive(event)

    def _refused(self, event: EventDelivery) -> None:
        """The inbox was full: record it (the next wait on its key reads it back)."""
        pending = self._refusals if self._ctx is None else self._ctx.shared.deliveries
        pending.append(
            DeliveryRecord(
                tenant=self._inp.tenant,
                event_id=event.id,
                run_id=self._inp.run_id,
                workflow_id=workflow.info().workflow_id,
                status=DeliveryStatus.DEFERRED,
                reason=DEFERRED_REASON,
            )
        )

    @workflow.update(name=COMPLETE_TASK_UPDATE)
    def complete_task(self, completion: TaskCompletion) -> dict[str, Any]:
        """Complete an open human task; the first valid completion wins."""
        task = self._tasks.tasks[completion.task_id]
        task.completion = completion
        task.completed_at = workflow.now()
        return {
            "taskId": completion.task_id,
            "completedBy": completion.completed_by,
            "completedAt": task.completed_at.isoformat(),
        }

    @complete_task.validator
    def _check_completion(self, completion: TaskCompletion) -> None:
        task = self._tasks.tasks.get(completion.task_id)
        if task is None:
            raise ApplicationError("the task is not open", type="TaskNotOpen")
        if task.completion is not None:
            raise ApplicationError(
                "the task was already completed",
                {"completedBy": task.completion.completed_by},
                type="TaskAlreadyCompleted",
            )
        errors = task.errors(completion.data)
        if errors:
            raise ApplicationError(
                f"the data does not match the task's form ({len(errors)} error(s))",
                errors,
                type="TaskDataInvalid",
            )

    @workflow.query(name="tempoflow.state")
    def state(self) -> dict[str, Any]:
        """Current variables and step path (for operators)."""
        if self._ctx is None:
            return {"vars": {}, "currentStep": None}
        return {"vars": self._ctx.vars, "currentStep": self._current}
