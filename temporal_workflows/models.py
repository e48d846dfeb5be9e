"""Workflow and activity payloads (one pydantic model in, one out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from expression.limits import ExpressionLimits
from projections.records import ProjectionBatch

WORKFLOW_NAME = "tempoflow.run"
PROJECT_ACTIVITY = "tempoflow.project"


class RunInput(BaseModel):
    """Everything a run needs; the definition body is pinned in history."""

    run_id: str
    tenant: str
    definition_key: str
    definition_version: int
    definition: dict[str, Any]
    input: Any = None
    limits: ExpressionLimits = Field(default_factory=ExpressionLimits)


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
    idempotency_key: str
    pending: ProjectionBatch = Field(default_factory=ProjectionBatch)


class ActionOutcome(BaseModel):
    output: Any = None
    attempt: int = 1
