"""Request and response models, named by role (``…Create``, ``…Public``)."""

from __future__ import annotations

import datetime as dt
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
)
from pydantic.alias_generators import to_camel

from tempoflow.definition import Issue
from tempoflow.errors import ErrorItem
from tempoflow.secrets import MAX_SECRET_LENGTH, MIN_SECRET_LENGTH

DEFINITION_KEY = r"^[a-z0-9][a-z0-9._-]{0,127}$"
INT32_MAX = 2**31 - 1
"""Largest value of an INTEGER column (version numbers)."""


def _duration_only(value: Any) -> Any:
    """A duration is an ISO 8601 string: refuse booleans and bare numbers."""
    if isinstance(value, str | dt.timedelta):
        return value
    raise ValueError("an ISO 8601 duration string is required, e.g. PT1H")


Duration = Annotated[dt.timedelta, BeforeValidator(_duration_only)]


_RFC3339_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _timestamp_only(value: Any) -> Any:
    """A timestamp is an RFC 3339 string: refuse booleans and numbers, also as strings
    (pydantic would read ``"-58800"`` as seconds since 1970)."""
    if isinstance(value, dt.datetime) or (isinstance(value, str) and _RFC3339_DATE.match(value)):
        return value
    raise ValueError("an RFC 3339 date-time string is required, e.g. 2026-01-31T12:00:00Z")


Timestamp = Annotated[dt.datetime, BeforeValidator(_timestamp_only)]
AwareTimestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_only)]
"""An RFC 3339 date-time with its offset."""


def _loop_indexes(value: Any) -> Any:
    """The stored iteration label (``"3.7"``) as indexes, outermost loop first."""
    if isinstance(value, str):
        return [int(part) for part in value.split(".")] if value else None
    return value


LoopIndexes = Annotated[
    list[int] | None,
    BeforeValidator(_loop_indexes),
    Field(description="for-each iteration indexes, outermost loop first ([3], [3, 7])"),
]


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class _Write(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class DefinitionDraft(_Write):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: dict[str, Any]


class DefinitionValidate(_Write):
    """Validate this body instead of the stored draft (for CI before a PUT)."""

    definition: dict[str, Any] | None = None


class DefinitionPublic(_Public):
    key: str
    name: str
    description: str | None
    definition: dict[str, Any] = Field(validation_alias="draft")
    draft_hash: str
    latest_version: int | None
    paused: bool = False
    created_at: datetime
    updated_at: datetime


class DefinitionSummary(_Public):
    key: str
    name: str
    description: str | None
    latest_version: int | None
    updated_at: datetime


class DefinitionsPublic(_Public):
    items: list[DefinitionSummary]
    next_cursor: str | None = None


class VersionPublic(_Public):
    key: str
    version: int
    name: str
    description: str | None
    definition: dict[str, Any] = Field(validation_alias="body")
    content_hash: str
    published_at: datetime
    action_defaults: dict[str, Any] | None = Field(
        default=None,
        description="the declared retry/timeout defaults of the actions it calls, pinned at "
        "publish (step and definition settings win over them)",
    )


class ValidationReport(_Public):
    valid: bool
    errors: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)


class ScheduleStart(_Public):
    scheduled_at: datetime
    started_at: datetime
    run_id: str | None = None


class SchedulePublic(_Public):
    trigger: str
    enabled: bool = Field(
        default=True, description="false while an operator has the trigger disabled"
    )
    schedule_id: str = Field(description="the Temporal Schedule's id")
    schedule: dict[str, Any] = Field(description="the trigger's schedule as published")
    exists: bool = Field(description="false when Temporal has no such schedule (publish again)")
    paused: bool | None = None
    next_run_times: list[datetime] = Field(default_factory=list)
    recent_starts: list[ScheduleStart] = Field(default_factory=list)
    running_run_ids: list[str] = Field(default_factory=list)
    num_starts: int = 0
    num_skipped_overlap: int = 0
    num_missed_catchup_window: int = 0


class SchedulesPublic(_Public):
    items: list[SchedulePublic]


class TriggerPublic(_Public):
    """One trigger of the definition and whether it may start runs."""

    name: str | None = Field(description="unnamed event triggers cannot be switched off alone")
    kind: Literal["event", "webhook", "schedule"] | None = Field(
        description="null for a disabled name the latest version no longer has"
    )
    event: str | None = None
    position: int | None = Field(default=None, description="index in the version's triggers")
    in_latest_version: bool = True
    enabled: bool = Field(description="false while disabled (the definition's pause aside)")
    active: bool = Field(description="starts runs now: enabled and the definition not paused")
    disabled_by: str | None = Field(default=None, description="API key id that disabled it")
    disabled_at: datetime | None = None


class TriggersPublic(_Public):
    paused: bool = Field(description="the definition-wide pause")
    version: int | None = Field(description="the latest published version the list is of")
    items: list[TriggerPublic]


class PublishedVersion(VersionPublic):
    """The published version and what validation warned about."""

    warnings: list[Issue] = Field(default_factory=list)


class RunCreate(_Write):
    definition: str = Field(pattern=DEFINITION_KEY)
    version: int | None = Field(default=None, ge=1, le=INT32_MAX, strict=True)
    input: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    start_at: AwareTimestamp | None = Field(
        default=None,
        description="begin the run at this time (RFC 3339 with an offset), in the future and "
        "at most MAX_START_DELAY (365 days) ahead; it is SCHEDULED until then",
    )


class RunPublic(_Public):
    id: str
    workflow_id: str
    definition: str
    version: int
    status: str
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    parent_run_id: str | None = None
    start_at: datetime | None = Field(
        default=None, description="when a delayed run (startAt) was asked to begin"
    )
    trigger: dict[str, str] | None = Field(
        default=None,
        description="what started the run besides the API or a parent: {'schedule': name}",
    )
    source: str = Field(
        default="projection",
        description="'projection' (Postgres) or 'temporal' when the projection has not caught up",
    )
    temporal_ui_url: str | None = None


class RunControlPublic(_Public):
    id: str
    status: str = Field(description="the run's status in Temporal when the request returned")
    action: str = Field(
        description="'cancel_requested', 'canceled_before_start' (a SCHEDULED run) or 'terminated'"
    )


class RetryPublic(_Public):
    id: str
    dry_run: bool
    status: str = Field(description="RUNNING once reset; the current status on a dry run")
    resume_from: dict[str, Any] = Field(
        description="stepPath and action the run resumes at (null when it resumes at its "
        "last workflow task), the reset event id and why"
    )


class TerminateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="terminated by an operator", min_length=1, max_length=1000)


class RunsPublic(_Public):
    items: list[RunPublic]
    next_cursor: str | None = None


class StepPublic(_Public):
    seq: int
    path: str
    loop: LoopIndexes = None
    step_id: str
    type: str
    status: str
    attempt: int | None
    started_at: datetime
    finished_at: datetime | None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None


class StepsPublic(_Public):
    items: list[StepPublic]


class WorkerAvailability(_Public):
    available: bool = Field(
        description="a worker of the API's task queue that loaded it was seen within "
        "TEMPOFLOW_WORKER_PRESENCE_SECONDS (and has not stopped)"
    )
    last_seen: datetime | None = Field(
        default=None, description="last heartbeat of any worker that loaded it"
    )
    versions: list[int] = Field(
        default_factory=list, description="versions the available workers loaded"
    )


class ActionPublic(_Public):
    name: str
    version: int | None = Field(description="null: only workers know this action")
    description: str = ""
    side_effects: bool | None = None
    local: bool | None = Field(
        default=None, description="runs as a Temporal local activity (in versions published now)"
    )
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    retry: dict[str, Any] | None = Field(default=None, description="declared default retry")
    timeouts: dict[str, Any] | None = Field(default=None, description="declared timeouts")
    publish_roles: list[str] | None = Field(
        default=None, description="roles that may publish definitions calling it (null: any)"
    )
    registered: bool = Field(
        default=True,
        description="the API knows it (definitions may call it); false: only workers have it",
    )
    workers: WorkerAvailability


class ExpressionEvaluate(_Write):
    expression: str = Field(min_length=1, max_length=8192)
    envelope: dict[str, Any] = Field(
        default_factory=dict, description="payload, vars, meta (as a run would see them)"
    )
    now: Timestamp | None = Field(default=None, description="clock for $now() (default: now)")
    seed: int = Field(default=0, strict=True, description="seed for $random(), $uuid(), $shuffle()")


class ExpressionResult(_Public):
    result: Any = None


class AttemptPublic(_Public):
    attempt: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: dict[str, Any] | None = None


class InvocationPublic(_Public):
    action: str
    action_version: int
    idempotency_key: str
    step_path: str
    loop: LoopIndexes
    status: str
    attempts: int
    output: Any = None
    error: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptPublic] = Field(default_factory=list)


class InvocationsPublic(_Public):
    items: list[InvocationPublic]


EVENT_NAME = r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$"
MAX_BUFFER_TTL = dt.timedelta(days=7)


class Correlation(_Write):
    """How an event's correlation key is derived when the producer sends none: a JSONata
    ``expression`` over the event, or ``paths`` (JSON pointers into the event, the first
    present one wins)."""

    expression: str | None = Field(default=None, min_length=1, max_length=8192)
    paths: list[str] | None = Field(default=None, min_length=1, max_length=10)


class EventTypeWrite(_Write):
    description: str | None = Field(default=None, max_length=2000)
    payload_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    correlation: Correlation | None = None
    buffer_ttl: Duration | None = Field(
        default=None, description="ISO 8601 duration, at most P7D (default PT1H)"
    )


class EventTypePublic(_Public):
    name: str
    description: str | None
    payload_schema: dict[str, Any] | None = Field(
        default=None, serialization_alias="schema", alias="payloadSchema"
    )
    correlation: dict[str, Any] | None
    buffer_ttl_seconds: int
    created_at: datetime
    updated_at: datetime


class EventTypesPublic(_Public):
    items: list[EventTypePublic]


class EventCreate(_Write):
    name: str = Field(pattern=EVENT_NAME)
    id: str | None = Field(default=None, min_length=1, max_length=200)
    payload: Any = None
    correlation_key: Any = Field(
        default=None,
        json_schema_extra={"type": ["string", "number", "null"]},
        description="a string or a number; anything else is refused (event_invalid)",
    )
    """Checked by ingress (not coerced here: a boolean must not become the key "1")."""
    occurred_at: Timestamp | None = None


class EventBatchCreate(_Write):
    events: list[EventCreate] = Field(min_length=1)


class EventReceipt(_Public):
    id: str
    name: str
    correlation_key: str | None
    correlated: bool
    status: str
    received_at: datetime
    duplicate: bool = False


class HookReceipt(_Public):
    """The answer to a webhook call (the same again for a repeated delivery id)."""

    run_id: str
    delivery_id: str
    event_id: str
    received_at: datetime
    duplicate: bool = False


class HookPublic(_Public):
    trigger: str
    hook_id: str
    url: str
    signature: str
    version: int
    created_at: datetime
    enabled: bool = Field(
        default=True, description="false while an operator has the trigger disabled (409)"
    )


class HooksPublic(_Public):
    items: list[HookPublic]


class EventReceipts(_Public):
    items: list[EventReceipt]


class DeliveryPublic(_Public):
    run_id: str
    workflow_id: str
    kind: str
    status: str
    step_path: str | None = None
    definition: str | None = None
    reason: str | None = None
    updated_at: datetime


class EventPublic(EventReceipt):
    payload: Any = None
    occurred_at: datetime | None = None
    key_source: str | None = None
    attempts: int = 0
    last_error: str | None = None
    routed_at: datetime | None = None
    deliveries: list[DeliveryPublic] = Field(default_factory=list)


class EventsPublic(_Public):
    items: list[EventPublic]
    next_cursor: str | None = None


class TaskComplete(_Write):
    data: Any = None
    completed_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="who completed it (default: the API key's id)",
    )


class TaskPublic(_Public):
    id: str
    run_id: str
    workflow_id: str
    definition: str = Field(validation_alias="definition_key")
    step_path: str
    title: str
    description: str | None
    form: dict[str, Any]
    assignee: str | None
    role: str | None
    status: str
    created_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    data: Any = None


class TasksPublic(_Public):
    items: list[TaskPublic]
    next_cursor: str | None = None


class WaitPublic(_Public):
    seq: int
    step_path: str
    loop: LoopIndexes = None
    event_names: list[str]
    correlation_key: str
    status: str
    since: datetime
    expires_at: datetime | None = None
    closed_at: datetime | None = None
    event_id: str | None = None


class WaitsPublic(_Public):
    items: list[WaitPublic]


ApiKeyRole = Literal["admin", "publisher", "operator", "ingest"]


class ApiKeyCreate(_Write):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    roles: list[ApiKeyRole] = Field(min_length=1, max_length=4)
    expires_at: AwareTimestamp | None = Field(
        default=None, description="the key stops working then (must be in the future)"
    )


class ApiKeyPublic(_Public):
    id: str
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    roles: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the key itself: shown this once, never again")


class ApiKeysPublic(_Public):
    items: list[ApiKeyPublic]


class AuditEntryPublic(_Public):
    id: int
    at: datetime
    actor: str = Field(description="id of the API key that acted")
    action: str
    target: str
    reason: str | None = None
    details: Any = None


class AuditPublic(_Public):
    items: list[AuditEntryPublic]
    next_cursor: str | None = None


class BulkFilter(_Write):
    definition: str | None = Field(default=None, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    status: Literal["SCHEDULED", "QUEUED", "RUNNING", "WAITING"] | None = None
    started_after: AwareTimestamp | None = None
    started_before: AwareTimestamp | None = None


class BulkControl(_Write):
    filter: BulkFilter
    dry_run: StrictBool = False
    reason: str | None = Field(default=None, min_length=1, max_length=1000)


class BulkFailure(_Public):
    id: str
    code: str
    detail: str


class BulkControlPublic(_Public):
    dry_run: bool
    matched: int = Field(description="open runs the filter selects")
    ids: list[str] = Field(description="the selected runs (dry run: the first 100)")
    done: int = Field(default=0, description="runs Temporal accepted the request for")
    failed: list[BulkFailure] = Field(default_factory=list)


class DecisionRequest(_Write):
    decision: Literal["retry", "skip", "fail"]
    output: Any = Field(default=None, description="the step's output when skipping")
    loop: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=32,
        description="for-each iteration indexes of the step, outermost first (as in /steps)",
    )
    reason: str | None = Field(default=None, max_length=1000)


class DecisionPublic(_Public):
    id: str
    step_path: str
    decision: str


class EgressRulesWrite(_Write):
    allow: list[Annotated[str, Field(max_length=300)]] = Field(
        max_length=1000,
        description="Hosts (`billing.internal`, `*.corp.example`), addresses and CIDR "
        "networks (`10.1.2.0/24`) the tenant's HTTP actions may reach although the egress "
        "policy refuses them by default",
    )


class EgressRulesPublic(_Public):
    allow: list[str]
    updated_at: datetime | None = None


class SecretWrite(_Write):
    """A secret's value: stored encrypted, never returned."""

    value: str = Field(
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        json_schema_extra={"writeOnly": True},
    )


class SecretPublic(_Public):
    """What the API shows of a secret: its name and timestamps, never the value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretsPublic(_Public):
    items: list[SecretPublic]


class RunLogLinePublic(_Public):
    """A line an action logged (``core.log``, an action's context logger)."""

    id: int
    time: datetime
    level: str
    message: str
    fields: dict[str, Any] | None = None
    step_path: str | None = None
    loop: LoopIndexes = None
    attempt: int | None = None


class RunLogsPublic(_Public):
    items: list[RunLogLinePublic]
    next_cursor: str | None = None


class NamedSchemaWrite(_Write):
    schema_: dict[str, Any] = Field(
        alias="schema", description="a JSON Schema (checked against its meta-schema)"
    )


class NamedSchemaPublic(_Public):
    ref: str
    schema_: dict[str, Any] = Field(alias="schema")
    content_hash: str
    created_at: datetime


class NamedSchemaSummary(_Public):
    ref: str
    content_hash: str
    created_at: datetime


class NamedSchemasPublic(_Public):
    items: list[NamedSchemaSummary]
    next_cursor: str | None = None


class NodeTypePublic(_Public):
    type: str
    description: str
    fields: dict[str, str]
    scope_names: dict[str, list[str]]
    config_schema: dict[str, Any]


class NodeTypesPublic(_Public):
    items: list[NodeTypePublic]


class BundleVersionRef(_Public):
    key: str
    version: int = Field(description="the version's number in this tenant")
    bundle_version: int = Field(description="its number in the bundle")


class BundleItems(_Public):
    workflows: list[str] = Field(default_factory=list)
    versions: list[BundleVersionRef] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    schemas: list[str] = Field(default_factory=list)


class BundleImportPublic(_Public):
    """What an import created, updated and left unchanged (a dry run: would have)."""

    dry_run: bool
    force: bool
    created: BundleItems
    updated: BundleItems
    unchanged: BundleItems
    warnings: list[ErrorItem] = Field(default_factory=list)


class NotificationPublic(_Public):
    """One entry of a run's notification delivery log."""

    id: str
    run_id: str
    policy: str = Field(description="pointer to the policy in the definition")
    step_path: str | None = None
    loop: LoopIndexes = None
    event: str
    channel: str
    recipient: Any = None
    status: str = Field(description="SENDING, RETRYING, SENT or FAILED")
    attempts: int
    error: dict[str, Any] | None = None
    provider_message_id: str | None = None
    resend_of: str | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None


class NotificationsPublic(_Public):
    items: list[NotificationPublic]


class ResendPublic(_Public):
    id: str = Field(description="the new delivery log entry (the resend)")
    resend_of: str
    status: str
