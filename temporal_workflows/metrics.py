"""Run and step metrics emitted by the interpreter through Temporal's workflow meter.

``workflow.metric_meter()`` is replay safe (nothing is recorded while a worker replays
history), so each run start, run end and step end is counted once by the worker that
executed it. The worker exposes them on its ``/metrics`` (``activities/telemetry.py``).
Labels are bounded: tenant, definition key, node type, action name, status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

RUNS_STARTED = "tempoflow_runs_started"
RUNS_FINISHED = "tempoflow_runs_finished"
RUN_DURATION = "tempoflow_run_duration_seconds"
STEP_DURATION = "tempoflow_step_duration_seconds"


def run_started(tenant: str, definition: str) -> None:
    """A run began (its first execution, not a continue-as-new)."""
    workflow.metric_meter().create_counter(RUNS_STARTED, "Runs started").add(
        1, {"tenant": tenant, "definition": definition}
    )


def run_finished(
    tenant: str, definition: str, status: str, started: datetime, closed: datetime
) -> None:
    """A run closed with ``status`` (SUCCEEDED, FAILED or CANCELED)."""
    attributes = {"tenant": tenant, "definition": definition, "status": str(status)}
    meter = workflow.metric_meter()
    meter.create_counter(RUNS_FINISHED, "Runs finished, by status").add(1, attributes)
    meter.create_histogram_float(RUN_DURATION, "Run duration from start to close").record(
        max((closed - started).total_seconds(), 0.0), attributes
    )


def step_finished(step: Any, status: str, started: datetime, finished: datetime) -> None:
    """A step ended: its duration by node type, action (``action.call`` only) and
    status."""
    workflow.metric_meter().create_histogram_float(
        STEP_DURATION, "Step duration by node type, action and status"
    ).record(
        max((finished - started).total_seconds(), 0.0),
        {
            "node_type": step.type,
            "action": getattr(step, "action", None) or "",
            "status": str(status),
        },
    )
