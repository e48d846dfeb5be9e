"""Worker-side Prometheus metrics recorded by the activities.

Labels are bounded: actions are the worker's registered ones, outcomes a fixed set, and
no label carries a run id, a tenant's data or an error message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram, disable_created_metrics

from tempoflow.records import ProjectionBatch

# No ``*_created`` series: they double the exposition and nothing here reads them.
disable_created_metrics()

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

ACTION_DURATION = Histogram(
    "tempoflow_action_duration_seconds",
    "Time an action handler took per attempt, by action and outcome",
    ["action", "outcome"],
    buckets=DURATION_BUCKETS,
)
ACTION_ATTEMPTS = Counter(
    "tempoflow_action_attempts",
    "Action attempts by action and outcome (succeeded, failed, canceled)",
    ["action", "outcome"],
)
PROJECTION_LAG = Histogram(
    "tempoflow_projection_lag_seconds",
    "Time from a projection record's creation in the workflow (its latest timestamp) to "
    "its write in PostgreSQL",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
PROJECTION_WRITES = Counter(
    "tempoflow_projection_writes",
    "Projection batches written by the projection activity, by result",
    ["result"],
)


@contextmanager
def observe_action(action: str) -> Iterator[None]:
    """Time one handler attempt of ``action`` and count its outcome."""
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "succeeded"
    except asyncio.CancelledError:
        outcome = "canceled"
        raise
    finally:
        ACTION_DURATION.labels(action, outcome).observe(time.perf_counter() - started)
        ACTION_ATTEMPTS.labels(action, outcome).inc()


def _latest(batch: ProjectionBatch) -> datetime | None:
    # An open run's record carries its start time, which says nothing about when this
    # batch was made: only its closing time counts.
    stamps: list[datetime] = []
    if batch.run is not None and batch.run.closed_at is not None:
        stamps.append(batch.run.closed_at)
    for step in batch.steps:
        stamps.append(step.finished_at or step.started_at)
    for wait in batch.waits:
        stamps.append(wait.closed_at or wait.since)
    return max(stamps) if stamps else None


def observe_projection(batch: ProjectionBatch, *, ok: bool) -> None:
    """Count a projection write and, when it succeeded, how far it lagged behind the
    newest record it carried (workflow time, so a retried write shows the outage)."""
    PROJECTION_WRITES.labels("ok" if ok else "error").inc()
    if not ok:
        return
    latest = _latest(batch)
    if latest is not None:
        PROJECTION_LAG.observe(max((datetime.now(UTC) - latest).total_seconds(), 0.0))
