"""Tables. Primary data: api keys, definitions, versions, trigger subscriptions, event
types, named schemas, egress rules, the event inbox, the secret store, worker presence and the audit
log. Projections: runs, steps, action invocations and their attempts, waits, event
deliveries, human tasks, the run-activity feed and run logs; the notification
delivery log is written by the notification activity as it sends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from projections.db import Base

Timestamp = DateTime(timezone=True)
# Python None is SQL NULL (not JSON null), so upserts can COALESCE missing values.
Json = JSONB(none_as_null=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)


class DefinitionRow(Base):
    __tablename__ = "definitions"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    draft: Mapped[dict[str, Any]] = mapped_column(JSONB)
    draft_hash: Mapped[str] = mapped_column(String(64))
    latest_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    paused: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """A paused definition's triggers start no runs."""
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    """Set by ``DELETE /v1/definitions/{key}``: nothing starts runs of it any more; its
    versions stay (runs in flight and their history); ``PUT`` re-creates the key."""
    deleted_by: Mapped[str | None] = mapped_column(String(36))


class DefinitionVersionRow(Base):
    __tablename__ = "definition_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "key"], ["definitions.tenant", "definitions.key"], ondelete="CASCADE"
        ),
    )

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str | None] = mapped_column(String(36))
    published_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    action_defaults: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """The declared retry/timeout defaults of the actions the version calls, as the API's
    registry had them at publish (pinned into every run of the version)."""


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_started", "tenant", "started_at", "run_id"),
        Index("ix_runs_tenant_definition", "tenant", "definition_key", "started_at"),
        Index("ix_runs_closed", "closed_at", postgresql_where=text("closed_at IS NOT NULL")),
        Index(
            "ix_runs_open",
            "tenant",
            "status",
            "updated_at",
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(255))
    definition_key: Mapped[str] = mapped_column(String(128))
    definition_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer)
    input: Mapped[Any] = mapped_column(Json, nullable=True)
    output: Mapped[Any] = mapped_column(Json, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    parent_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    parent_step_path: Mapped[str | None] = mapped_column(String(1024))
    start_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    """When a delayed run (``startAt``) was asked to begin; null for runs started at once."""
    trigger: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    """What started the run besides the API or a parent (``{"schedule": name}``)."""


class StepRow(Base):
    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    loop: Mapped[str | None] = mapped_column(String(256))
    """Iteration indexes of enclosing for-each steps ("3", "3.7"), none outside loops."""
    step_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    input: Mapped[Any] = mapped_column(Json, nullable=True)
    output: Mapped[Any] = mapped_column(Json, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)


class ActionInvocation(Base):
    """One logical action call, unique per idempotency key: retries, re-executions after a
    worker crash and replays after a reset find the recorded outcome here."""

    __tablename__ = "action_invocations"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(128), primary_key=True)
    action_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    step_path: Mapped[str] = mapped_column(String(1024))
    loop: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    output: Mapped[Any] = mapped_column(Json, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    claimed_by: Mapped[str | None] = mapped_column(Text)
    """The step holding the claim on the key (run id, step path, loop iteration)."""
    claimed_attempt: Mapped[int | None] = mapped_column(Integer)
    """The claiming attempt (of that step)."""
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    """End of the claim's lease (the attempt's deadline); NULL once its outcome is
    recorded. Another run may take over a claim whose lease has ended."""


class ActionAttempt(Base):
    """Each attempt of an invocation (status, timings, error)."""

    __tablename__ = "action_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "action", "action_version", "idempotency_key"],
            [
                "action_invocations.tenant",
                "action_invocations.action",
                "action_invocations.action_version",
                "action_invocations.idempotency_key",
            ],
            ondelete="CASCADE",
        ),
        Index("ix_action_attempts_run", "run_id"),
    )

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(128), primary_key=True)
    action_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """The run that made the attempt (runs sharing a key each have their own attempts)."""
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)


class TriggerSubscription(Base):
    """The triggers of a definition's latest published version (replaced on publish)."""

    __tablename__ = "trigger_subscriptions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "definition_key"],
            ["definitions.tenant", "definitions.key"],
            ondelete="CASCADE",
        ),
        Index("ix_trigger_subscriptions_event", "tenant", "event_name"),
    )

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_name: Mapped[str] = mapped_column(String(128))
    filter: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    trigger_name: Mapped[str | None] = mapped_column(String(64))
    """The trigger's ``name`` (event triggers may have none)."""


class DisabledTrigger(Base):
    """A trigger an operator turned off by name (``POST .../triggers/{name}:disable``).

    Kept by name apart from the subscriptions, so republishing (which replaces those)
    never turns it back on; only ``:enable`` (or deleting the definition) removes it."""

    __tablename__ = "disabled_triggers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "definition_key"],
            ["definitions.tenant", "definitions.key"],
            ondelete="CASCADE",
        ),
    )

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    trigger_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    disabled_by: Mapped[str | None] = mapped_column(String(36))
    disabled_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class HookRow(Base):
    """A webhook trigger's hook (``POST /v1/hooks/{hook_id}``): the random id stays while
    the latest version has a webhook trigger of that name; ``config`` is the trigger's
    ``webhook`` object of that version."""

    __tablename__ = "webhook_hooks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "definition_key"],
            ["definitions.tenant", "definitions.key"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("tenant", "definition_key", "trigger_name"),
    )

    hook_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    definition_key: Mapped[str] = mapped_column(String(128))
    trigger_name: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class EventType(Base):
    __tablename__ = "event_types"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    payload_schema: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    correlation: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    """``{"expression": …}`` or ``{"paths": [pointer, …]}`` over the event."""
    buffer_ttl_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class NamedSchema(Base):
    """A named JSON Schema (``payload.Order.v1``), immutable once written; definitions
    and event types refer to it as ``{"$ref": "schema:<ref>"}`` and pin a copy."""

    __tablename__ = "named_schemas"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), primary_key=True)
    schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class Event(Base):
    """The inbox: every accepted event, durable before the 202 (deduplicated by id)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_key", "tenant", "name", "correlation_key", "received_at"),
        Index("ix_events_tenant_seq", "tenant", "seq"),
        Index(
            "ix_events_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_events_settled", "received_at", postgresql_where=text("status <> 'PENDING'")),
    )

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    correlation_key: Mapped[str | None] = mapped_column(String(256))
    """``NULL``: uncorrelated (can start runs, never routed to waits)."""
    key_source: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    occurred_at: Mapped[datetime | None] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    """``PENDING`` until routed (waits signalled, trigger runs started), then ``ROUTED``
    (``UNCORRELATED`` without a key); ``FAILED`` when routing kept failing."""
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    routed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    trace_context: Mapped[dict[str, str] | None] = mapped_column(Json, nullable=True)
    """W3C trace context of the request that sent the event (tracing on only)."""


class EventDeliveryRow(Base):
    """An event's routing to one run: the dispatcher's side and the run's verdict."""

    __tablename__ = "event_deliveries"
    __table_args__ = (Index("ix_event_deliveries_run", "run_id"),)

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    """``wait`` or ``trigger``."""
    status: Mapped[str] = mapped_column(String(16))
    step_path: Mapped[str | None] = mapped_column(String(1024))
    definition_key: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class WaitRow(Base):
    """``event.wait`` steps; open ones are the routing index."""

    __tablename__ = "waits"
    __table_args__ = (
        Index(
            "ix_waits_open",
            "tenant",
            "correlation_key",
            postgresql_where=text("status = 'WAITING'"),
        ),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(255))
    step_path: Mapped[str] = mapped_column(String(1024))
    loop: Mapped[str | None] = mapped_column(String(256))
    event_names: Mapped[list[str]] = mapped_column(ARRAY(String(128)))
    correlation_key: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    event_id: Mapped[str | None] = mapped_column(String(200))


class HumanTaskRow(Base):
    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_human_tasks_tenant", "tenant", "status", "created_at"),
        Index("ix_human_tasks_run", "run_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(36))
    workflow_id: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int] = mapped_column(Integer)
    step_path: Mapped[str] = mapped_column(String(1024))
    definition_key: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    form: Mapped[dict[str, Any]] = mapped_column(JSONB)
    assignee: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_by: Mapped[str | None] = mapped_column(String(256))
    data: Mapped[Any] = mapped_column(Json, nullable=True)


class AuditRow(Base):
    """Who did what, when and why (primary data: not rebuilt from Temporal)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_id", "tenant", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[Any] = mapped_column(Json, nullable=True)


class WorkerPresence(Base):
    """A worker process and the actions it loaded, refreshed by its heartbeat (not tenant
    data: workers serve every tenant)."""

    __tablename__ = "worker_presence"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    task_queue: Mapped[str] = mapped_column(String(200), index=True)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """``[{name, version}]`` of every action the worker loaded."""
    started_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    last_seen: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    stopped_at: Mapped[datetime | None] = mapped_column(Timestamp)


class EgressRules(Base):
    """A tenant's egress allow-list (primary data): hosts and CIDR networks its HTTP
    actions may reach although the egress policy refuses them by default."""

    __tablename__ = "egress_rules"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    allow: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class SecretRow(Base):
    """The secret store (primary data): values encrypted with the configured keyring,
    bound to tenant and name; never returned by the API."""

    __tablename__ = "secrets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    """Fingerprint of the key that encrypted ``ciphertext`` (``tempoflow.keyring``)."""
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class RunFeedRow(Base):
    """The run-activity feed that live streams read (status changes, steps, waits, tasks,
    log lines), written in the transaction of the projection write it reports.

    Readers follow ``(txid, id)`` and take only rows of transactions older than every
    transaction still in progress, so no row can appear behind a reader's position (ids
    are assigned in insertion order, not commit order). ``dedupe`` makes a repeated write
    of the same record add nothing.
    """

    __tablename__ = "run_feed"
    __table_args__ = (
        # Also the run streams' index (a run's entries are sorted in memory).
        UniqueConstraint("run_id", "dedupe"),
        Index("ix_run_feed_tenant", "tenant", "txid", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id()::text)::bigint")
    )
    """The writing transaction's id."""
    tenant: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(36))
    definition_key: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    """The SSE event name (``run.status``, ``step.completed``, ``log``…)."""
    dedupe: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class RunLogRow(Base):
    """A line an action logged (``core.log``, an action's context logger)."""

    __tablename__ = "run_logs"
    __table_args__ = (
        UniqueConstraint("run_id", "line_key"),
        Index("ix_run_logs_run_level", "run_id", "level", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(36))
    line_key: Mapped[str] = mapped_column(String(64))
    """``<step seq>:<attempt>:<line number>``: a repeated write adds nothing."""
    step_path: Mapped[str | None] = mapped_column(String(1024))
    loop: Mapped[str | None] = mapped_column(String(256))
    attempt: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(SmallInteger)
    """Python logging level number (10 debug, 20 info, 30 warning, 40 error)."""
    message: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    logged_at: Mapped[datetime] = mapped_column(Timestamp)


class NotificationRow(Base):
    """The delivery log: one row per notification (idempotency key), written by the
    notification activity as it sends (its attempts, outcome and the provider's message
    id) and kept with the rendered message (secret references, never values) so an
    operator can send it again."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("tenant", "key"),
        Index("ix_notifications_run", "run_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(36))
    definition_key: Mapped[str] = mapped_column(String(128))
    policy: Mapped[str] = mapped_column(String(1024))
    step_path: Mapped[str | None] = mapped_column(String(1024))
    loop: Mapped[str | None] = mapped_column(String(256))
    event: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[Any] = mapped_column(Json, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    resend_of: Mapped[str | None] = mapped_column(String(36))
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    """End of the sending attempt's lease; another attempt does not send before it."""
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
