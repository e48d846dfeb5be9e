"""Rebuild the run projections from Temporal history alone.

Every projection record a run writes is made by deterministic workflow code from its
history, so replaying the history re-creates them: the replay captures what the workflow
hands to its projection activities (the batches of steps, waits, tasks and run rows, the
waits it registers, the step an action starts). What the action activity writes itself
is read from the activity's events (a local action's from its marker, its input from the
replay): the step's resolved input (the activity's input),
the attempt that ended the invocation, its output or error, and the action's version
(in the activity's result or failure). Runs Temporal closed without their own closing
write (terminated, timed out) are closed as the reconciler closes them.

Not rebuilt: the attempts before an invocation's last one (Temporal keeps only the last
attempt's events; their count is kept in ``attempts``), event deliveries (the inbox is
primary data; re-routing re-creates them), the audit log and API keys (primary data).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    StartLocalActivityInput,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from app.run_control import closing_reason
from app.run_starter import TEMPORAL_STATUS
from projections import runs
from projections.models import (
    ActionAttempt,
    ActionInvocation,
    HumanTaskRow,
    RunRow,
    StepRow,
    WaitRow,
)
from projections.writer import write_batch
from tempoflow.definition.model import ActionCall, type_of
from tempoflow.ids import parse_workflow_id
from tempoflow.records import (
    InvocationRecord,
    ProjectionBatch,
    RunStatus,
    StepRecord,
    StepStatus,
)
from temporal_workflows.interpreter import InterpreterWorkflow
from temporal_workflows.models import (
    WORKFLOW_NAME,
    ActionFailure,
    ActionOutcome,
    RegisterWait,
)
from temporal_workflows.models import ActionInvocation as Invocation

log = logging.getLogger("tempoflow.rebuild")

INTERNAL_ACTIVITIES = frozenset(
    {"tempoflow.project", "tempoflow.register_wait", "tempoflow.notify"}
)
LOCAL_ACTIVITY_MARKER = "core_local_activity"
_CLOSED_BY_TEMPORAL = (WorkflowExecutionStatus.TERMINATED, WorkflowExecutionStatus.TIMED_OUT)
_CLOSES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
}


class _Capture(Interceptor):
    """Collects the arguments the workflow passes to activities, in order, and whether
    each was a local activity (the n-th call is the activity of sequence number n)."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, Any]] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        calls = self.calls

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> Any:
                calls.append((False, input.args[0] if input.args else None))
                return super().start_activity(input)

            def start_local_activity(self, input: StartLocalActivityInput) -> Any:
                calls.append((True, input.args[0] if input.args else None))
                return super().start_local_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                return await super().execute_workflow(input)

        return Inbound


@dataclass
class _Activity:
    """One action activity of the history: its input and how its last attempt went."""

    invocation: Invocation
    scheduled_at: datetime
    attempt: int = 1
    started_at: datetime | None = None
    closed: str | None = None
    closed_at: datetime | None = None
    result: Any = None
    failure: Any = None


@dataclass
class Rebuilt:
    batches: list[ProjectionBatch] = field(default_factory=list)
    runs_closed: list[tuple[str, str, WorkflowExecutionStatus, datetime | None]] = field(
        default_factory=list
    )


def _payload(payloads: Any) -> Any:
    return json.loads(payloads.payloads[0].data) if payloads.payloads else None


def _activities(events: Sequence[HistoryEvent]) -> dict[tuple[str, int], _Activity]:
    """Action activities by (step path, step seq)."""
    by_event: dict[int, _Activity] = {}
    found: dict[tuple[str, int], _Activity] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name in INTERNAL_ACTIVITIES or not attrs.input.payloads:
                continue
            data = _payload(attrs.input)
            if not isinstance(data, dict) or "idempotency_key" not in data:
                continue  # not an action (e.g. resolving a child's definition)
            inv = Invocation.model_validate(data)
            act = _Activity(inv, event.event_time.ToDatetime().astimezone())
            by_event[event.event_id] = act
            found[(inv.step_path + "@" + (inv.loop or ""), inv.seq)] = act
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs_s = event.activity_task_started_event_attributes
            act_s = by_event.get(attrs_s.scheduled_event_id)
            if act_s is not None:
                act_s.attempt = attrs_s.attempt
                act_s.started_at = event.event_time.ToDatetime().astimezone()
        elif kind in _CLOSES:
            name = {
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out",
                EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled",
            }[kind]
            attrs_c = getattr(event, f"{name}_event_attributes")
            act_c = by_event.get(attrs_c.scheduled_event_id)
            if act_c is None:
                continue
            act_c.closed = _CLOSES[kind]
            act_c.closed_at = event.event_time.ToDatetime().astimezone()
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                act_c.result = _payload(attrs_c.result)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                act_c.failure = attrs_c.failure
    return found


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, dict) or "seconds" not in value:
        return None
    return datetime.fromtimestamp(value["seconds"] + value.get("nanos", 0) / 1e9, UTC)


def _marker_json(payloads: Any) -> Any:
    """A marker's JSON payload (``None``: none, or not JSON, e.g. ``binary/null``)."""
    try:
        return _payload(payloads)
    except ValueError:
        return None


def _local_activities(events: Sequence[HistoryEvent]) -> dict[int, dict[str, Any]]:
    """What the local activity markers say, by activity sequence number: the attempt,
    schedule and completion times, and the result or the failure (a local action's input
    is not in history: the replay gives it)."""
    found: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        attrs = event.marker_recorded_event_attributes
        if attrs.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in attrs.details:
            continue
        data = _marker_json(attrs.details["data"])
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            continue
        found[data["seq"]] = {
            "attempt": data.get("attempt") or 1,
            "scheduled_at": _timestamp(data.get("original_schedule_time")),
            "closed_at": _timestamp(data.get("complete_time")),
            "result": _marker_json(attrs.details["result"]) if "result" in attrs.details else None,
            "failure": attrs.failure if attrs.HasField("failure") else None,
            "at": event.event_time.ToDatetime().astimezone(),
        }
    return found


def _local_action(inv: Invocation, marker: dict[str, Any]) -> _Activity:
    """A local action's attempt as its marker recorded it."""
    at = marker["at"]
    act = _Activity(inv, marker["scheduled_at"] or at, attempt=marker["attempt"])
    act.started_at = marker["scheduled_at"] or at
    act.closed_at = marker["closed_at"] or at
    if marker["failure"] is not None:
        failure = marker["failure"]
        # A failed local activity's failure may be wrapped (activity failure info).
        act.failure = failure.cause if failure.HasField("activity_failure_info") else failure
        act.closed = "failed"
    elif marker["result"] is not None:
        act.closed, act.result = "completed", marker["result"]
    return act


def _step_started(act: _Activity) -> StepRecord:
    """The RUNNING step the action activity writes when it claims the invocation."""
    inv = act.invocation
    return StepRecord(
        run_id=inv.run_id,
        tenant=inv.tenant,
        seq=inv.seq,
        path=inv.step_path,
        loop=inv.loop,
        step_id=inv.step_id,
        type=type_of(ActionCall),
        status=StepStatus.RUNNING,
        attempt=inv.attempt_base + act.attempt,
        started_at=act.started_at or act.scheduled_at,
        input=inv.input,
    )


def _outcome(act: _Activity) -> InvocationRecord | None:
    """The invocation's outcome as its last attempt recorded it."""
    inv = act.invocation
    base = {
        "tenant": inv.tenant,
        "action": inv.action,
        "idempotency_key": inv.idempotency_key,
        "run_id": inv.run_id,
        "step_path": inv.step_path,
        "loop": inv.loop,
        "started_at": act.started_at or act.scheduled_at,
        "finished_at": act.closed_at,
    }
    if act.closed == "completed":
        outcome = ActionOutcome.model_validate(act.result)
        if outcome.deduplicated:
            return None  # recorded by the run that ran it
        return InvocationRecord(
            **base,
            action_version=outcome.action_version or 1,
            attempt=outcome.attempt,
            status="SUCCEEDED",
            invocation_status="SUCCEEDED",
            output=outcome.output,
        )
    if act.closed in ("failed", "canceled") and act.failure is not None:
        info = act.failure.application_failure_info
        details = _payload(info.details) if info.details.payloads else None
        envelope = ActionFailure.model_validate(details) if isinstance(details, dict) else None
        if info.type == "BookkeepingUnavailable":
            return None  # given back before the handler ran: not an attempt
        return InvocationRecord(
            **base,
            action_version=(envelope.action_version if envelope else None) or 1,
            attempt=envelope.attempt if envelope else inv.attempt_base + act.attempt,
            status="FAILED",
            invocation_status="FAILED",
            error={
                "type": info.type or "ActivityError",
                "message": act.failure.message,
                "retryable": not info.non_retryable,
                "details": envelope.details if envelope else None,
            },
        )
    return None


async def rebuild_execution(history: WorkflowHistory) -> Rebuilt:
    """The projection batches of one execution, in the order the run wrote them."""
    capture = _Capture()
    replayer = Replayer(
        workflows=[InterpreterWorkflow],
        interceptors=[capture],
        workflow_runner=UnsandboxedWorkflowRunner(),
        data_converter=pydantic_data_converter,
        debug_mode=True,  # offline: no deadlock timer on a busy machine
    )
    await replayer.replay_workflow(history, raise_on_replay_failure=True)
    activities = _activities(history.events)
    markers = _local_activities(history.events)
    rebuilt = Rebuilt()
    for seq, (local, arg) in enumerate(capture.calls, start=1):
        if isinstance(arg, ProjectionBatch):
            rebuilt.batches.append(arg)
        elif isinstance(arg, RegisterWait):
            waits = [*arg.pending.waits, arg.wait]
            rebuilt.batches.append(arg.pending.model_copy(update={"waits": waits}))
        elif isinstance(arg, Invocation):
            act = activities.get((arg.step_path + "@" + (arg.loop or ""), arg.seq))
            if local and seq in markers:
                act = _local_action(arg, markers[seq])
            steps = [*arg.pending.steps]
            invocations = [*arg.pending.invocations]
            if act is not None:
                steps.append(_step_started(act))
                outcome = _outcome(act)
                if outcome is not None:
                    invocations.append(outcome)
            rebuilt.batches.append(
                arg.pending.model_copy(update={"steps": steps, "invocations": invocations})
            )
    return rebuilt


@dataclass
class Summary:
    executions: int = 0
    runs: int = 0
    closed_by_temporal: int = 0
    failures: list[str] = field(default_factory=list)


async def rebuild(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    *,
    run_id: str | None = None,
    since: datetime | None = None,
    tenant: str | None = None,
) -> Summary:
    """Rebuild the runs the filter selects (all when none): their rows are deleted and
    written again from history, one run per transaction."""
    query = f"WorkflowType = '{WORKFLOW_NAME}'"
    if run_id is not None:
        query += (
            f" AND WorkflowId LIKE '%/{run_id}'"
            if tenant is None
            else (f" AND WorkflowId = '{tenant}/{run_id}'")
        )
    elif tenant is not None:
        query += f" AND WorkflowId STARTS_WITH '{tenant}/'"
    if since is not None:
        query += f" AND StartTime >= '{since.isoformat()}'"
    by_workflow: dict[str, list[Any]] = {}
    async for execution in client.list_workflows(query):
        by_workflow.setdefault(execution.id, []).append(execution)
    summary = Summary()
    for wid, executions in by_workflow.items():
        ids = parse_workflow_id(wid)
        if ids is None:
            continue
        tenant_of, rid = ids
        executions.sort(key=lambda e: e.start_time)
        batches: list[ProjectionBatch] = []
        try:
            for execution in executions:
                handle = client.get_workflow_handle(wid, run_id=execution.run_id)
                history = await handle.fetch_history()
                batches += (await rebuild_execution(history)).batches
                summary.executions += 1
        except Exception as err:  # one run that cannot be replayed does not stop the rest
            log.warning("run %s cannot be rebuilt: %r", wid, err)
            summary.failures.append(f"{wid}: {err}")
            continue
        last = executions[-1]
        async with sessions.begin() as session:
            await _clear(session, rid)
            for batch in batches:
                await write_batch(session, batch)
            await _invocations_created(session, batches)
            status = TEMPORAL_STATUS.get(last.status) if last.status else None
            if last.status in _CLOSED_BY_TEMPORAL and status is not None:
                summary.closed_by_temporal += int(
                    await runs.close_from_temporal(
                        session,
                        tenant_of,
                        rid,
                        status=RunStatus(status),
                        closed_at=last.close_time,
                        reason=await closing_reason(client, wid, last.run_id),
                    )
                )
        summary.runs += 1
    return summary


async def _clear(session: AsyncSession, run_id: str) -> None:
    for table, column in (
        (StepRow, StepRow.run_id),
        (WaitRow, WaitRow.run_id),
        (HumanTaskRow, HumanTaskRow.run_id),
        (ActionAttempt, ActionAttempt.run_id),
        (ActionInvocation, ActionInvocation.run_id),
        (RunRow, RunRow.run_id),
    ):
        await session.execute(delete(table).where(column == run_id))


async def _invocations_created(session: AsyncSession, batches: list[ProjectionBatch]) -> None:
    """An invocation was created when its first attempt started (the earliest record)."""
    first: dict[tuple[str, str, int, str], datetime] = {}
    for batch in batches:
        for r in batch.invocations:
            key = (r.tenant, r.action, r.action_version, r.idempotency_key)
            first[key] = min(first.get(key, r.started_at), r.started_at)
    table = ActionInvocation.__table__.c
    for (tenant, action, version, idempotency_key), at in first.items():
        await session.execute(
            update(ActionInvocation)
            .where(
                table.tenant == tenant,
                table.action == action,
                table.action_version == version,
                table.idempotency_key == idempotency_key,
            )
            .values(created_at=at)
        )
