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

    from tempoflow.definition import parse_definition
    from tempoflow.error_types import ErrorType
    from tempoflow.ids import parse_workflow_id
    from tempoflow.records import (
        DEFERRED_REASON,
        DeliveryRecord,
        DeliveryStatus,
        ProjectionBatch,
        RunRecord,
        RunStatus,
        StepStatus,
        WaitRecord,
    )
    from tempoflow.redaction import Redaction
    from temporal_workflows import events
    from temporal_workflows import metrics as run_metrics
    from temporal_workflows.context import RunContext
    from temporal_workflows.events import DecisionBoard, Mailbox, TaskBoard, decision_key
    from temporal_workflows.failures import ContinueAsNew, RunReturned, StepFailure, position_key
    from temporal_workflows.gate import (
        DEFAULT_PRIORITY,
        GATE_ACQUIRE_ACTIVITY,
        GATE_CLOSE_ACTIVITY,
        GATE_RELEASE_SIGNAL,
        GRANT_SIGNAL,
        GateAcquire,
        GateClose,
        GateRequest,
        gate_id,
    )
    from temporal_workflows.models import (
        COMPLETE_TASK_UPDATE,
        DECIDE_UPDATE,
        EVENT_SIGNAL,
        PROJECT_ACTIVITY,
        REGISTER_WAIT_ACTIVITY,
        WORKFLOW_NAME,
        EventDelivery,
        RegisterWait,
        ResumeState,
        RunInput,
        RunResult,
        StepDecision,
        TaskCompletion,
    )
    from temporal_workflows.nodes import EXECUTORS, Runtime
    from temporal_workflows.nodes.base import shielded
    from temporal_workflows.notify import Notifier

# Projection writes retry without limit: the activities raise only on transient database
# errors (unstorable data is written degraded). Backoff beyond the threshold waits on a
# workflow timer instead of keeping the workflow task alive with heartbeats, so a long
# database outage adds a few history events per two minutes, not per eight seconds.
_PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
)
_PROJECTION_LOCAL_RETRY = timedelta(seconds=30)
DEFAULT_MAX_HISTORY = 5_000
"""Continue as new past this many events even when Temporal does not suggest it yet
(Temporal's hard limit is 51,200; the goal is small histories that replay fast)."""
PATCH_2026_11 = "tempoflow-2026-11-pause-anywhere"
"""Runs started on this interpreter: loops and branches pause anywhere to continue as new,
cancellation is never a catchable failure, closing writes are shielded from cancellation,
payload sizes and the history limit are checked before Temporal refuses them."""
PATCH_FLOW = "tempoflow-flow-control"
PATCH_RELEASE = "tempoflow-flow-release-delivered"
PATCH_RELEASE_CLOSE = "tempoflow-flow-release-on-close"
"""Limited runs from this version release their slot with their closing write (one
activity), not with a signal the run waits to see delivered (one more workflow task)."""
"""A limited run awaits its release signal's delivery before it closes (before this
patch it was sent with the closing commands, which Temporal drops)."""
"""Runs of a definition with ``limits`` wait for a slot of its gate (``gate.py``)."""
REQUEUE_AFTER = timedelta(minutes=10)
"""A queued run repeats its request this often (a gate that was terminated or reset
loses nothing queued: each waiting run asks again)."""


def _ignore_failure(task: asyncio.Task[None]) -> None:
    """A release the gate did not take (it was terminated): it holds nothing of the run."""
    if not task.cancelled():
        task.exception()


@workflow.defn(name=WORKFLOW_NAME)
class InterpreterWorkflow:
    """Runs a definition step by step; side effects only through activities."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self._ctx: RunContext | None = None
        self._notifier = Notifier([])
        self._current: str | None = None
        self._max_history = DEFAULT_MAX_HISTORY
        # Signal and update handlers run before ``run`` in the first activation: their
        # state (with what a continued run carried over) exists before them.
        self._refusals: list[DeliveryRecord] = []
        self._gate: str | None = None
        """The gate this run holds a slot of (or waits in): released with the closing
        write."""
        self._released = False
        self._mailbox = Mailbox(on_refused=self._refused)
        if not inp.run_id:
            # A schedule's run: the run id is the workflow id after ``<tenant>/`` (Temporal
            # appended the scheduled time to the schedule's workflow id).
            parsed = parse_workflow_id(workflow.info().workflow_id)
            inp.run_id = parsed[1] if parsed else workflow.info().workflow_id
        self._inp = inp
        self._tasks = TaskBoard()
        self._decisions = DecisionBoard()
        self._granted = False
        if inp.resume is not None:
            self._mailbox.restore(inp.resume.processed_events, inp.resume.inbox)

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        inp = self._inp  # with the run id ``__init__`` completed
        self._patched = workflow.patched(PATCH_2026_11)
        ctx = self._ctx = RunContext.in_workflow(inp)
        ctx.shared.flush = self._flush_status
        ctx.shared.deliveries.extend(self._refusals)  # refused before ``run`` began
        positions: dict[str, Any] = {}
        if inp.resume is None:
            run_metrics.run_started(inp.tenant, inp.definition_key)
        else:
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
            decisions=self._decisions,
            register_wait=self._register_wait,
            patched=self._patched,
        )
        rt.before_unwinding = self._boundary_flush
        self._rt = rt
        try:
            definition = parse_definition(inp.definition)
        except ValidationError as err:
            raise ApplicationError(
                f"definition {inp.definition_key} v{inp.definition_version} is invalid",
                err.errors(include_url=False, include_context=False),
                type=ErrorType.DEFINITION_INVALID,
                non_retryable=True,
            ) from None
        self._notifier.run_policies = list(definition.notify)
        ctx.shared.notify = self._notifier.fire
        if definition.redact:
            ctx.shared.redact = list(definition.redact)
            ctx.shared.redaction = Redaction(
                definition.redact, output_is_vars=definition.output is None
            )
        if definition.limits is None or not workflow.patched(PATCH_FLOW):
            if inp.resume is None:
                ctx.notify("started")
            return await self._execute(inp, ctx, definition)
        gate = self._gate = gate_id(inp.tenant, inp.definition_key)
        leaving = True
        try:
            if inp.resume is None:  # a continued run holds its slot already
                await self._enter_gate(gate, definition, ctx)
                ctx.notify("started")  # when it starts, not while it is queued
            result = await self._execute(inp, ctx, definition)
        except workflow.ContinueAsNewError:
            leaving = False  # the next execution (same workflow id) keeps the slot
            raise
        except (Exception, asyncio.CancelledError):
            leaving = False
            if self._released:
                raise
            if workflow.patched(PATCH_RELEASE):
                await self._release_delivered(gate)
            else:
                self._leave_gate(gate)
            raise
        finally:
            if leaving and not self._released and not workflow.patched(PATCH_RELEASE):
                self._leave_gate(gate)
        if not self._released and workflow.patched(PATCH_RELEASE):
            await self._release_delivered(gate)
        return result

    async def _release_delivered(self, gate: str) -> None:
        """Release the slot and wait until Temporal delivered the signal: a signal
        sent with a run's last commands is dropped when the run closes (the gate then
        only freed the slot at its next holder check, 10 s later)."""
        try:
            await workflow.get_external_workflow_handle(gate).signal(
                GATE_RELEASE_SIGNAL, workflow.info().workflow_id
            )
        except Exception:  # the gate is gone: nothing holds the slot
            workflow.logger.debug("release signal to %s failed", gate)

    async def _enter_gate(self, gate: str, definition: Any, ctx: RunContext) -> None:
        """Wait for a slot: the run is QUEUED until the gate grants one (its next
        projection write carries RUNNING). A cancellation while queued ends the run
        (its release takes it out of the queue)."""
        limits = definition.limits
        request = GateRequest(
            workflow_id=workflow.info().workflow_id,
            max_concurrent=limits.maxConcurrentRuns,
            starts_per_minute=limits.startsPerMinute,
            priority=definition.priority or DEFAULT_PRIORITY,
        )
        ctx.shared.status = RunStatus.QUEUED
        pending: Any = ctx.take_pending(ctx.run_record(RunStatus.QUEUED))
        while not self._granted:
            _, cancelled = await shielded(
                workflow.execute_local_activity(
                    GATE_ACQUIRE_ACTIVITY,
                    GateAcquire(
                        gate_id=gate,
                        task_queue=workflow.info().task_queue,
                        request=request,
                        pending=pending,
                    ),
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=_PROJECTION_RETRY,
                    local_retry_threshold=_PROJECTION_LOCAL_RETRY,
                )
            )
            pending = None
            try:
                if cancelled:
                    raise asyncio.CancelledError()
                await workflow.wait_condition(lambda: self._granted, timeout=REQUEUE_AFTER)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                await self._closing_flush(
                    ctx.run_record(RunStatus.CANCELED, closed_at=workflow.now())
                )
                raise

    def _leave_gate(self, gate: str) -> None:
        """Release the slot (or the place in the queue). Sent with the run's last
        commands, not awaited: the run closes in the same workflow task."""
        release = workflow.get_external_workflow_handle(gate).signal(
            GATE_RELEASE_SIGNAL, workflow.info().workflow_id
        )
        try:
            task = asyncio.create_task(release)
        except BaseException:  # evicted from the worker's cache: nothing to send
            release.close()
            raise
        task.add_done_callback(_ignore_failure)

    @workflow.signal(name=GRANT_SIGNAL)
    def granted(self) -> None:
        """The definition's gate gave this run a slot."""
        self._granted = True

    async def _execute(self, inp: RunInput, ctx: RunContext, definition: Any) -> RunResult:
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
            result = RunResult(output=output)
            if self._patched:
                # Temporal would refuse the completion and retry it forever.
                ctx.check_size(result, "the run's output", catchable=False)
        except StepFailure as failure:
            if failure.path is None:
                failure.path = "/output"
            error = failure.to_dict()
            if self._patched and ctx.payload_size(error) > inp.run_limits.max_payload_bytes // 2:
                error["details"] = {"omitted": "the error's details are too large to keep"}
            ctx.notify("failed", error=error)
            await self._closing_flush(
                ctx.run_record(RunStatus.FAILED, error=error, closed_at=workflow.now())
            )
            raise ApplicationError(
                failure.message, error, type=failure.type, non_retryable=True
            ) from None
        except ContinueAsNew as can:
            if await self._closing_flush():
                await self._cancelled_at_boundary(ctx)
            if self._patched:
                try:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                except asyncio.CancelledError:
                    await self._cancelled_at_boundary(ctx)
            else:
                await workflow.wait_condition(workflow.all_handlers_finished)
            resumed = inp.model_copy(
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
            if self._patched:
                await self._check_carried(ctx, resumed)
            workflow.continue_as_new(resumed)
        except asyncio.CancelledError:
            await self._closing_flush(ctx.run_record(RunStatus.CANCELED, closed_at=workflow.now()))
            raise
        ctx.notify("completed", output=output)
        # A cancellation arriving while the outcome is written no longer changes it.
        await self._closing_flush(
            ctx.run_record(RunStatus.SUCCEEDED, output=output, closed_at=workflow.now())
        )
        return result

    async def _boundary_flush(self) -> bool:
        """Before unwinding to continue as new: write the pending projections while every
        block is still in place (a cancel now runs ``finally`` blocks as usual)."""
        _, cancelled = await shielded(self._flush())
        return cancelled

    async def _cancelled_at_boundary(self, ctx: RunContext) -> None:
        """Cancelled while unwinding to continue as new: the blocks have already left
        their ``finally`` sections, so the run ends ``CANCELED`` right here."""
        await self._closing_flush(ctx.run_record(RunStatus.CANCELED, closed_at=workflow.now()))
        raise asyncio.CancelledError()

    async def _check_carried(self, ctx: RunContext, resumed: RunInput) -> None:
        """The state carried across continue-as-new must fit one payload."""
        try:
            ctx.check_size(resumed, "the state carried to the next execution", catchable=False)
        except StepFailure as failure:
            failure.path = self._current
            await self._closing_flush(
                ctx.run_record(RunStatus.FAILED, error=failure.to_dict(), closed_at=workflow.now())
            )
            raise ApplicationError(
                failure.message, failure.to_dict(), type=failure.type, non_retryable=True
            ) from None

    async def _closing_flush(self, run: RunRecord | None = None) -> bool:
        """Write what closes an execution. On a patched run no cancellation interrupts it,
        and a run's outcome is written by a regular activity, never a local one: a local
        activity runs inside the workflow task that completes the run, and when Temporal
        refuses that task (a cancel or an update arrived meanwhile) the outcome it wrote
        never happened. Returns whether a cancellation arrived meanwhile."""
        drained = False  # a cancellation arrived while notifications were delivered
        if self._notifier.pending:
            # Deliveries end before the execution does (closes or continues as new).
            _, drained = await shielded(self._notifier.drain())
        if run is not None and run.closed_at is not None:
            run_metrics.run_finished(
                run.tenant, run.definition_key, run.status, run.started_at, run.closed_at
            )
        if not self._patched:
            await self._flush(run)
            return drained
        if run is None:
            _, cancelled = await shielded(self._flush())
            return drained or cancelled
        assert self._ctx is not None
        limit = self._ctx.inp.run_limits.max_payload_bytes
        if self._ctx.pending_size() + self._ctx.payload_size(run) > limit:
            # Too large for one activity input (history): the other records go first.
            _, cancelled = await shielded(self._flush())
        else:
            cancelled = False
        batch = self._ctx.take_pending(run)
        if self._gate is not None and workflow.patched(PATCH_RELEASE_CLOSE):
            return drained or cancelled or await self._close_and_release(batch, limit)
        if self._ctx.payload_size(batch) > limit:
            _, late = await shielded(self._project_locally(batch))
        else:
            _, late = await shielded(
                workflow.execute_activity(
                    PROJECT_ACTIVITY,
                    batch,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=_PROJECTION_RETRY,
                    summary=f"project {run.status.value}",
                )
            )
        return drained or cancelled or late

    async def _close_and_release(self, batch: ProjectionBatch, limit: int) -> bool:
        """A limited run's closing write, then the release of its slot, in one activity
        (a batch too large for the activity's input is written locally first). Returns
        whether a cancellation arrived meanwhile."""
        assert self._gate is not None and self._ctx is not None
        late = False
        if self._ctx.payload_size(batch) > limit:
            _, late = await shielded(self._project_locally(batch))
            batch = ProjectionBatch()
        self._released = True
        _, cancelled = await shielded(
            workflow.execute_activity(
                GATE_CLOSE_ACTIVITY,
                GateClose(gate_id=self._gate, workflow_id=workflow.info().workflow_id, batch=batch),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_PROJECTION_RETRY,
                summary="project the outcome, release the slot",
            )
        )
        return late or cancelled

    async def _project_locally(self, batch: ProjectionBatch) -> None:
        await workflow.execute_local_activity(
            PROJECT_ACTIVITY,
            batch,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=_PROJECTION_RETRY,
            local_retry_threshold=_PROJECTION_LOCAL_RETRY,
        )

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
            if (
                index > start
                and self._rt.continue_due(ctx)
                and (not self._patched or await self._rt.pause())
            ):
                can = ContinueAsNew()
                can.positions[key] = index
                raise can
            if self._patched:
                self._check_history(f"{base}/{index}")
            try:
                await self._run_step(steps[index], f"{base}/{index}", ctx)
            except ContinueAsNew as can:
                can.positions[key] = index  # resume inside this (container) step
                raise

    def _check_history(self, path: str) -> None:
        """Fail the run (through the normal path, projected) before Temporal would
        terminate it at its history limit, when it cannot continue as new in time."""
        assert self._ctx is not None
        limits = self._ctx.inp.run_limits
        info = workflow.info()
        length, size = info.get_current_history_length(), info.get_current_history_size()
        if length > limits.max_history_events or size > limits.max_history_bytes:
            raise StepFailure(
                ErrorType.HISTORY_LIMIT_EXCEEDED,
                f"this execution's history has {length:,} events ({size:,} bytes), over the "
                f"run's limit of {limits.max_history_events:,} events "
                f"({limits.max_history_bytes:,} bytes); it could not continue as new",
                path,
                {"events": length, "bytes": size},
                catchable=False,
            )

    async def _run_step(self, step: Any, path: str, ctx: RunContext) -> None:
        seq = ctx.next_seq()
        started = workflow.now()
        self._current = path

        def finish(status: StepStatus, **fields: Any) -> None:
            run_metrics.step_finished(step, status, started, workflow.now())
            ctx.record(
                ctx.step_record(
                    seq, path, step, status, started, finished_at=workflow.now(), **fields
                )
            )

        if step.notify:
            ctx.notify("started", step, path)
        try:
            outcome = await EXECUTORS[step.type](step, path, seq, ctx, self._rt)
        except StepFailure as failure:
            if failure.path is None:
                failure.path = path
            finish(StepStatus.FAILED, attempt=failure.attempt, error=failure.to_dict())
            if step.notify:
                ctx.notify("failed", step, path, error=failure.to_dict())
            raise
        except RunReturned as returned:
            # The return step itself (the first to see it) carries the output; enclosing
            # blocks just end.
            finish(StepStatus.SUCCEEDED, output=None if returned.recorded else returned.output)
            returned.recorded = True
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
        if step.notify:
            ctx.notify("completed", step, path, output=outcome.output)

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
        await self._project_locally(batch)

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
            local_retry_threshold=_PROJECTION_LOCAL_RETRY,
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
        completed_by = (
            task.completion.completed_by
            if task is not None and task.completion is not None
            else self._tasks.completed.get(completion.task_id)
        )
        if completed_by is not None:
            raise ApplicationError(
                "the task was already completed",
                {"completedBy": completed_by},
                type=ErrorType.TASK_ALREADY_COMPLETED,
            )
        if task is None:
            raise ApplicationError("the task is not open", type=ErrorType.TASK_NOT_OPEN)
        errors = task.errors(completion.data)
        if errors:
            raise ApplicationError(
                f"the data does not match the task's form ({len(errors)} error(s))",
                errors,
                type=ErrorType.TASK_DATA_INVALID,
            )

    @workflow.update(name=DECIDE_UPDATE)
    def decide(self, decision: StepDecision) -> dict[str, Any]:
        """An operator's decision on a step waiting for one; the first valid one wins."""
        pending = self._decisions.pending[decision_key(decision.step_path, decision.loop)]
        pending.decision = decision
        return {"stepPath": decision.step_path, "decision": decision.decision}

    @decide.validator
    def _check_decision(self, decision: StepDecision) -> None:
        refusal = self._decisions.refusal(decision_key(decision.step_path, decision.loop))
        if refusal is None:
            return
        kind, decided_by = refusal
        if kind == ErrorType.DECISION_ALREADY_MADE:
            raise ApplicationError(
                "another decision was made first", {"decidedBy": decided_by}, type=kind
            )
        raise ApplicationError("no step of that path waits for a decision", type=kind)

    @workflow.query(name="tempoflow.state")
    def state(self) -> dict[str, Any]:
        """Current variables and step path (for operators)."""
        if self._ctx is None:
            return {"vars": {}, "currentStep": None}
        return {"vars": self._ctx.vars, "currentStep": self._current}
