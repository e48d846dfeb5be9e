"""Workflow and activity payloads (one pydantic model in, one out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from expression.limits import ExpressionLimits
from tempoflow.limits import RunLimits
from tempoflow.records import InvocationRecord, ProjectionBatch, WaitRecord

WORKFLOW_NAME = "tempoflow.run"
PROJECT_ACTIVITY = "tempoflow.project"
RESOLVE_DEFINITION_ACTIVITY = "tempoflow.resolve_definition"
REGISTER_WAIT_ACTIVITY = "tempoflow.register_wait"
EVENT_SIGNAL = "tempoflow.event"
COMPLETE_TASK_UPDATE = "tempoflow.complete_task"
NOTIFY_ACTIVITY = "tempoflow.notify"
RESEND_WORKFLOW = "tempoflow.notification.resend"


class RunInput(BaseModel):
    """Everything a run needs; the definition body is pinned in history."""

    run_id: str
    tenant: str
    definition_key: str
    definition_version: int
    definition: dict[str, Any]
    input: Any = None
    limits: ExpressionLimits = Field(default_factory=ExpressionLimits)
    run_limits: RunLimits = Field(default_factory=RunLimits)
    parent_run_id: str | None = None
    parent_step_path: str | None = None
    started_at: datetime | None = None
    """The first execution's start (kept across continue-as-new)."""
    resume: ResumeState | None = None
    trigger: dict[str, str] | None = None
    """What started the run when not the API or a parent: ``{"schedule": <trigger name>}``.
    A schedule's runs carry an empty ``run_id``: Temporal appends the scheduled time to
    the schedule's workflow id, and the run id is the workflow id after ``<tenant>/``."""
    action_defaults: dict[str, Any] = Field(default_factory=dict)
    """The declared defaults (``{"retry": …, "timeouts": …}``, only the fields the action
    writes) of the actions the definition calls, pinned when the version was published
    (``tempoflow.definition.action_options`` merges them)."""


class ResumeState(BaseModel):
    """Where a run continues after continue-as-new: variables, counters, positions."""

    vars: dict[str, Any]
    seq: int
    positions: dict[str, Any] = Field(default_factory=dict)
    """Per block or loop pointer (+ loop label): how far it got."""
    processed_events: list[str] = Field(default_factory=list)
    """Digests of the ids of events the run applied (newest last): a redelivery is
    ignored."""
    inbox: list[EventDelivery] = Field(default_factory=list)
    """Delivered events no wait has taken yet."""


class EventDelivery(BaseModel):
    """An inbox event as a run receives it (signal ``tempoflow.event``)."""

    id: str
    name: str
    correlation_key: str | None = None
    payload: Any = None
    occurred_at: datetime | None = None
    received_at: datetime
    seq: int = 0
    """The inbox order (ties of ``received_at`` within one request)."""

    def public(self) -> dict[str, Any]:
        """The event as expressions and variables see it."""
        return {
            "id": self.id,
            "name": self.name,
            "correlationKey": self.correlation_key,
            "payload": self.payload,
            "occurredAt": self.occurred_at.isoformat() if self.occurred_at else None,
            "receivedAt": self.received_at.isoformat(),
        }


class RegisterWait(BaseModel):
    """Index a wait (and write pending projections) under the routing lock."""

    wait: WaitRecord
    pending: ProjectionBatch = Field(default_factory=ProjectionBatch)
    buffered_limit: int = 1000
    buffered_bytes: int = 1024 * 1024
    """Payload bytes to return at most (the first event always comes)."""
    after_seq: int = 0
    """Only events after this inbox sequence (the next page, for a filtered wait)."""


class TaskCompletion(BaseModel):
    """Update ``tempoflow.complete_task``: form data for an open human task."""

    task_id: str
    data: Any = None
    completed_by: str


DECIDE_UPDATE = "tempoflow.decide"


class StepDecision(BaseModel):
    """Update ``tempoflow.decide``: an operator's decision on an ``action.call`` with
    ``onFailure: "ask"`` whose retries are exhausted."""

    step_path: str
    loop: str | None = None
    decision: Literal["retry", "skip", "fail"]
    output: Any = None
    """The step's output when skipped."""
    decided_by: str


class RunResult(BaseModel):
    output: Any = None


class ActionInvocation(BaseModel):
    """Input of an action activity (the activity type is the action name)."""

    action: str
    input: dict[str, Any]
    tenant: str
    run_id: str
    workflow_id: str
    step_path: str
    step_id: str
    seq: int
    loop: str | None = None
    idempotency_key: str
    pending: ProjectionBatch = Field(default_factory=ProjectionBatch)
    attempt_base: int = 0
    """Attempts made before this scheduling (after a ``BookkeepingUnavailable``)."""
    secrets: list[str] = Field(default_factory=list)
    """Pointers (under ``input``) of the ``{"$secret": …}`` references the definition
    wrote; the activity resolves only these (never one an expression produced from data)."""
    redact: list[str] = Field(default_factory=list)
    """The definition's ``redact`` pointers (the activity masks the step input it
    projects with the ``/input`` ones)."""


class ActionOutcome(BaseModel):
    output: Any = None
    attempt: int = 1
    deduplicated: bool = False
    """The invocation had already succeeded: its recorded output, no second side effect."""
    action_version: int | None = None
    """The version of the action that ran (so history alone rebuilds the invocation)."""
    unrecorded: InvocationRecord | None = None
    """The outcome the activity could not record (database unreachable), without its
    output (that is ``output``): the workflow's next projection write carries it."""


class DefinitionRequest(BaseModel):
    tenant: str
    key: str
    version: int | None = None


class DefinitionRef(BaseModel):
    key: str
    version: int
    body: dict[str, Any]
    action_defaults: dict[str, Any] = Field(default_factory=dict)


RunInput.model_rebuild()


class ActionFailure(BaseModel):
    """The details of the ``ApplicationError`` the action activity raises when an attempt
    fails (any error type): the attempt number travels with the error (catch blocks show
    it) next to the error's own details."""

    attempt: int
    details: Any = None
    action_version: int | None = None


class BookkeepingInterrupted(BaseModel):
    """The details of a ``BookkeepingUnavailable`` failure: the action activity gave
    ``attempt`` back before running the handler: the database was unreachable
    (``reason="database"``), or another run's attempt held a live claim on the
    idempotency key (``reason="claimed"``). The interpreter waits and schedules the action
    again; this never counts as an attempt and never reaches a catch block."""

    attempt: int
    reason: Literal["database", "claimed"] | None = None
    """``None`` in failures recorded before the reason was given."""


class NotificationRequest(BaseModel):
    """One notification to send (``tempoflow.notify``), rendered in the workflow:
    ``to`` and ``template`` hold no secret values, only ``{"$secret": name}`` references
    (``secrets``: the pointers, under ``/template``, the definition wrote)."""

    id: str
    """The delivery log entry's id (derived from ``key``)."""
    key: str
    """Idempotency key: run, notification, step (and loop iteration), event, channel."""
    tenant: str
    run_id: str
    workflow_id: str
    definition_key: str
    policy: str
    """Pointer to the notification policy in the definition (``/notify/0``,
    ``/steps/2/notify/1``)."""
    step_path: str | None = None
    step_id: str | None = None
    loop: str | None = None
    event: str
    channel: str
    to: Any = None
    template: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    resend_of: str | None = None
    render_error: dict[str, Any] | None = None
    """The policy could not be rendered (an expression failed, too large): recorded
    ``FAILED``, nothing sent."""


class NotificationReceipt(BaseModel):
    """What the notification activity reports (the delivery log has the rest)."""

    status: Literal["SENT", "DEDUPLICATED"]
    attempts: int
    provider_message_id: str | None = None
