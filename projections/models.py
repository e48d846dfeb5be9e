"""Tables. Primary data: api keys, definitions, versions. Projections: runs, steps, action
invocations and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKeyConstraint, Index, Integer, String, Text, func
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


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_started", "tenant", "started_at", "run_id"),
        Index("ix_runs_tenant_definition", "tenant", "definition_key", "started_at"),
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
