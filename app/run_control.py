"""Retrying a failed or terminated run in place (a redrive): a Temporal reset.

The run's Temporal execution is reset to the workflow task that scheduled the action
that failed (or was in flight when the run was terminated): Temporal replays everything
before it from history, so earlier steps are not executed again, and schedules that
action anew. Runs that failed outside an action (an expression error, a child run)
restart from their last workflow task: a deterministic failure then fails again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistoryEventFilterType

from tempoflow.ids import workflow_id
from temporal_workflows.models import (
    NOTIFY_ACTIVITY,
    PROJECT_ACTIVITY,
    REGISTER_WAIT_ACTIVITY,
    RESOLVE_DEFINITION_ACTIVITY,
)

RETRYABLE = (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TERMINATED)
# Notifications never decide where a run resumes (they never fail it).
_INTERNAL = {
    PROJECT_ACTIVITY,
    REGISTER_WAIT_ACTIVITY,
    RESOLVE_DEFINITION_ACTIVITY,
    NOTIFY_ACTIVITY,
}
_ACTION_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed out",
}


@dataclass(frozen=True)
class RetryPlan:
    temporal_run_id: str
    reset_event_id: int
    """The workflow task completed event the execution is reset to."""
    step_path: str | None
    action: str | None
    reason: str

    def public(self) -> dict[str, Any]:
        return {
            "stepPath": self.step_path,
            "action": self.action,
            "resetEventId": self.reset_event_id,
            "reason": self.reason,
        }


def _step_of(scheduled: HistoryEvent) -> tuple[str, str | None]:
    attrs = scheduled.activity_task_scheduled_event_attributes
    path = None
    if attrs.input.payloads:
        try:
            path = json.loads(attrs.input.payloads[0].data).get("step_path")
        except (ValueError, AttributeError):
            path = None
    return attrs.activity_type.name, path


def plan(events: list[HistoryEvent], temporal_run_id: str, *, terminated: bool) -> RetryPlan | None:
    """Where to reset a closed execution, from its history; None when there is no
    workflow task to reset to."""
    by_id = {e.event_id: e for e in events}
    scheduled_open: dict[int, HistoryEvent] = {}
    failed: tuple[HistoryEvent, str] | None = None
    last_task: int | None = None
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_task = event.event_id
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name not in _INTERNAL:
                scheduled_open[event.event_id] = event
        elif kind in _ACTION_ENDS:
            attrs = (
                event.activity_task_failed_event_attributes
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_timed_out_event_attributes
            )
            scheduled = scheduled_open.pop(attrs.scheduled_event_id, None)
            if scheduled is not None:
                failed = (scheduled, _ACTION_ENDS[kind])
        elif kind in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        ):
            attrs_id = (
                event.activity_task_completed_event_attributes.scheduled_event_id
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                else event.activity_task_canceled_event_attributes.scheduled_event_id
            )
            scheduled_open.pop(attrs_id, None)
    # A terminated run resumes at an action it had in flight; a failed one at its failure.
    in_flight = max(scheduled_open.values(), key=lambda e: e.event_id, default=None)
    target = failed
    if in_flight is not None and (terminated or failed is None):
        target = (in_flight, "was in flight")
    if target is not None:
        scheduled, why = target
        task = scheduled.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
        if task in by_id:
            action, path = _step_of(scheduled)
            return RetryPlan(temporal_run_id, task, path, action, f"action {action} {why}")
    if last_task is None:
        return None
    return RetryPlan(temporal_run_id, last_task, None, None, "the run's last workflow task")


async def plan_retry(client: Client, tenant: str, run_id: str) -> RetryPlan | None:
    """The plan for the run's latest execution (which must be closed as RETRYABLE)."""
    handle = client.get_workflow_handle(workflow_id(tenant, run_id))
    desc = await handle.describe()
    history = await client.get_workflow_handle(handle.id, run_id=desc.run_id).fetch_history()
    terminated = desc.status == WorkflowExecutionStatus.TERMINATED
    return plan(list(history.events), desc.run_id, terminated=terminated)


async def reset(client: Client, tenant: str, run_id: str, plan: RetryPlan, reason: str) -> str:
    """Reset the execution as planned; the new Temporal run id. Repeating a reset of the
    same execution and point is deduplicated by Temporal (same request id)."""
    wid = workflow_id(tenant, run_id)
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=wid, run_id=plan.temporal_run_id),
            reason=reason,
            workflow_task_finish_event_id=plan.reset_event_id,
            request_id=str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{plan.temporal_run_id}/{plan.reset_event_id}")
            ),
        )
    )
    return str(response.run_id)


async def closing_reason(client: Client, wid: str, temporal_run_id: str | None = None) -> str:
    """Why Temporal closed the execution, as the projection's error message shows it:
    the termination reason, or the execution timeout."""
    handle = client.get_workflow_handle(wid, run_id=temporal_run_id)
    async for event in handle.fetch_history_events(
        event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
    ):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            return terminated_message(event.workflow_execution_terminated_event_attributes.reason)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            return "timed out in Temporal (execution timeout)"
    return "closed in Temporal"


def terminated_message(reason: str) -> str:
    return f"terminated: {reason}" if reason else "terminated"
