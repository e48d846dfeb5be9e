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
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class StepStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


TERMINAL_RUN = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})
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


class ProjectionBatch(BaseModel):
    """Records to upsert together; the run record (if any) after the steps."""

    run: RunRecord | None = None
    steps: list[StepRecord] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return self.run is None and not self.steps
