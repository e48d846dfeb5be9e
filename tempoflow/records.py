"""Projection records: what workflow progress sends to the projection writers.

Pure pydantic, imported by workflow code. Every record is keyed so that writing it twice
(activities retry) changes nothing: runs by ``run_id`` guarded by ``seq``, steps by
``(run_id, seq)``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class RunStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    """Started with ``startAt``: Temporal holds it until then (its start delay); it has
    not begun yet (not terminal)."""
    QUEUED = "QUEUED"
    """Started, waiting for a slot of its definition's ``limits`` (flow control); it has
    not begun yet (not terminal)."""
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    """Ended by an operator (``POST /v1/runs/{id}/terminate`` or Temporal itself): no
    ``finally`` ran."""
    TIMED_OUT = "TIMED_OUT"
    """Temporal ended it at its execution timeout."""


class StepStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class WaitStatus(StrEnum):
    WAITING = "WAITING"
    MATCHED = "MATCHED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"


class DeliveryStatus(StrEnum):
    """What became of an event for one run (``events`` routing)."""

    PENDING = "PENDING"
    """Routed to the run's wait; the signal is not confirmed yet."""
    SIGNALED = "SIGNALED"
    APPLIED = "APPLIED"
    """The run's wait took the event."""
    FILTERED = "FILTERED"
    """The wait's filter was false for it."""
    DEFERRED = "DEFERRED"
    """The run's inbox was full: the run reads it back when it next waits for its key."""
    EXPIRED = "EXPIRED"
    """The wait had timed out when the event was routed."""
    RUN_CLOSED = "RUN_CLOSED"
    STARTED = "STARTED"
    """The event started the run (a definition trigger)."""
    DISABLED = "DISABLED"
    """The event matched a trigger that was off (definition paused or trigger disabled):
    no run was started, and none is started when the trigger is turned back on."""
    FAILED = "FAILED"
    """Refused for good: by Temporal, or the event cannot be encoded (the reason says)."""


DEFERRED_REASON = "the run's inbox was full; the run reads it back when it next waits for its key"


class TaskStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"


TERMINAL_RUN = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.TERMINATED,
        RunStatus.TIMED_OUT,
    }
)
TERMINAL_STEP = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELED})


class RunRecord(BaseModel):
    run_id: str
    tenant: str
    workflow_id: str
    definition_key: str
    definition_version: int
    status: RunStatus
    seq: int
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime
    closed_at: datetime | None = None
    parent_run_id: str | None = None
    parent_step_path: str | None = None
    trigger: dict[str, str] | None = None


class StepRecord(BaseModel):
    run_id: str
    tenant: str
    seq: int
    path: str
    loop: str | None = None
    step_id: str
    type: str
    status: StepStatus
    attempt: int | None = 1
    started_at: datetime
    finished_at: datetime | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None


class WaitRecord(BaseModel):
    """An ``event.wait`` of a run, keyed by ``(run_id, seq)``."""

    run_id: str
    seq: int
    tenant: str
    workflow_id: str
    step_path: str
    loop: str | None = None
    event_names: list[str]
    correlation_key: str
    status: WaitStatus = WaitStatus.WAITING
    since: datetime
    expires_at: datetime | None = None
    closed_at: datetime | None = None
    event_id: str | None = None


class DeliveryRecord(BaseModel):
    """The run's verdict on a delivered event, keyed by ``(tenant, event_id, run_id)``."""

    tenant: str
    event_id: str
    run_id: str
    workflow_id: str
    status: DeliveryStatus
    step_path: str | None = None
    reason: str | None = None


class TaskRecord(BaseModel):
    """A ``human.task``, keyed by ``id``."""

    id: str
    tenant: str
    run_id: str
    workflow_id: str
    seq: int
    step_path: str
    definition_key: str
    title: str
    description: str | None = None
    form: dict[str, Any]
    assignee: str | None = None
    role: str | None = None
    status: TaskStatus = TaskStatus.OPEN
    created_at: datetime
    due_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None
    data: Any = None


class InvocationRecord(BaseModel):
    """How one attempt of an action invocation ended, keyed by (tenant, action, action
    version, idempotency key) and, for the attempt, (run_id, attempt).

    The action activity writes it itself; when the database is unreachable it hands the
    record to the workflow, whose next projection write carries it.
    """

    tenant: str
    action: str
    action_version: int
    idempotency_key: str
    run_id: str
    step_path: str
    loop: str | None = None
    attempt: int
    status: str
    """The attempt's status: SUCCEEDED, FAILED or CANCELED."""
    invocation_status: str
    """The invocation's: SUCCEEDED, FAILED (final), RETRYING or CANCELED."""
    started_at: datetime
    finished_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None


class LogLineRecord(BaseModel):
    """A line an action logged during one attempt, keyed by ``(run_id, seq, attempt, n)``.

    Written by the action activity with the attempt's outcome; never carried through the
    workflow.
    """

    tenant: str
    run_id: str
    seq: int
    """The step's sequence number."""
    step_path: str
    loop: str | None = None
    attempt: int
    n: int
    """Line number within the attempt."""
    level: int
    """Python logging level number."""
    message: str
    fields: dict[str, Any] | None = None
    logged_at: datetime


class ProjectionBatch(BaseModel):
    """Records to upsert together; the run record (if any) after the steps."""

    run: RunRecord | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    waits: list[WaitRecord] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    tasks: list[TaskRecord] = Field(default_factory=list)
    invocations: list[InvocationRecord] = Field(default_factory=list)
    logs: list[LogLineRecord] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return (
            self.run is None
            and not self.steps
            and not self.waits
            and not self.deliveries
            and not self.tasks
            and not self.invocations
            and not self.logs
        )
