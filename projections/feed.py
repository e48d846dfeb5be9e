"""The run-activity feed: what live streams read, written with the projections it reports.

:func:`emit` runs at the end of every projection write (``writer.write_batch``), in the
same transaction: one statement inserts the batch's feed entries (and, when the batch
carries log lines, one more stores them in ``run_logs``) and, when anything new was
inserted, calls ``pg_notify`` once so API processes wake their streams. Entries are
deduplicated by ``(run_id, dedupe)``: a repeated write of the same record (activities
retry) adds nothing.

Ordering: ids come from a sequence, assigned at insert, not at commit, so a reader
following ids alone could pass an id whose transaction commits later. Each row also
keeps its transaction id (``txid``), which readers follow (``projections/feed_read.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.db import Executor, is_permanent
from projections.models import RunLogRow
from projections.storable import storable_json, storable_row
from tempoflow.records import (
    TERMINAL_RUN,
    LogLineRecord,
    ProjectionBatch,
    StepRecord,
    StepStatus,
    TaskStatus,
    WaitStatus,
)

log = logging.getLogger("tempoflow.projections")

CHANNEL = "tempoflow_feed"
"""The ``NOTIFY`` channel; the payload is ``tenant/run_id`` pairs separated by spaces, or
``*`` (wake every stream) when they would not fit."""
NOTIFY_LIMIT = 7900
"""Bytes of a notification payload (PostgreSQL accepts up to 8000)."""

_STEP_KIND = {
    StepStatus.SUCCEEDED: "step.completed",
    StepStatus.FAILED: "step.failed",
    StepStatus.CANCELED: "step.canceled",
}

_INSERT = text(
    """
WITH input AS (
    SELECT r.tenant, r.run_id, r.definition_key, r.kind, r.dedupe, r.data, o.ord
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS o(item, ord),
         LATERAL jsonb_to_record(o.item)
             AS r(tenant text, run_id text, definition_key text, kind text, dedupe text,
                  data jsonb)
), inserted AS (
    INSERT INTO run_feed (tenant, run_id, definition_key, kind, dedupe, data)
    SELECT i.tenant, i.run_id,
           COALESCE(i.definition_key,
                    (SELECT runs.definition_key FROM runs WHERE runs.run_id = i.run_id)),
           i.kind, i.dedupe, i.data
    FROM input i ORDER BY i.ord
    ON CONFLICT (run_id, dedupe) DO NOTHING
    RETURNING tenant, run_id
), targets AS (
    SELECT string_agg(DISTINCT tenant || '/' || run_id, ' ') AS payload FROM inserted
)
SELECT pg_notify(:channel,
                 CASE WHEN length(payload) <= :limit THEN payload ELSE '*' END)
FROM targets WHERE payload IS NOT NULL
"""
)

_LOG_INSERT = insert(RunLogRow).on_conflict_do_nothing(
    index_elements=[RunLogRow.run_id, RunLogRow.line_key]
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _step_entry(step: StepRecord) -> tuple[str, str]:
    if step.status in _STEP_KIND:
        return _STEP_KIND[step.status], f"step:{step.seq}:end"
    if step.error is not None:  # a failed attempt; the step retries
        return "step.retrying", f"step:{step.seq}:retrying:{step.attempt}"
    return "step.started", f"step:{step.seq}:started:{step.attempt}"


def level_name(level: int) -> str:
    """``debug``, ``info``, ``warning``, ``error`` (``critical`` counts as error)."""
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    if level >= logging.INFO:
        return "info"
    return "debug"


def log_data(line: LogLineRecord) -> dict[str, Any]:
    return {
        "seq": line.seq,
        "stepPath": line.step_path,
        "loop": line.loop,
        "attempt": line.attempt,
        "level": level_name(line.level),
        "message": line.message,
        "fields": line.fields,
        "time": _time(line.logged_at),
    }


def entries(batch: ProjectionBatch) -> list[dict[str, Any]]:
    """The feed entries a batch adds, in the order streams show them: an open run's
    status first, then log lines, steps, waits and tasks, a closed run's status last."""
    out: list[dict[str, Any]] = []

    def add(
        tenant: str, run_id: str, kind: str, dedupe: str, data: dict[str, Any], key: Any = None
    ) -> None:
        out.append(
            {
                "tenant": tenant,
                "run_id": run_id,
                "definition_key": key,
                "kind": kind,
                "dedupe": dedupe,
                "data": data,
            }
        )

    run = batch.run
    closing = run is not None and run.status in TERMINAL_RUN

    def add_run() -> None:
        assert run is not None
        add(
            run.tenant,
            run.run_id,
            "run.status",
            f"run:{run.seq}:{run.status}",
            {
                "runId": run.run_id,
                "status": str(run.status),
                "definition": run.definition_key,
                "version": run.definition_version,
                "error": run.error,
                "closedAt": _time(run.closed_at),
            },
            run.definition_key,
        )

    if run is not None and not closing:
        add_run()
    for line in batch.logs:
        add(
            line.tenant,
            line.run_id,
            "log",
            f"log:{line.seq}:{line.attempt}:{line.n}",
            {"runId": line.run_id, **log_data(line)},
        )
    for step in sorted(batch.steps, key=lambda s: s.seq):
        kind, dedupe = _step_entry(step)
        add(
            step.tenant,
            step.run_id,
            kind,
            dedupe,
            {
                "runId": step.run_id,
                "seq": step.seq,
                "path": step.path,
                "loop": step.loop,
                "stepId": step.step_id,
                "type": step.type,
                "status": str(step.status),
                "attempt": step.attempt,
                "startedAt": _time(step.started_at),
                "finishedAt": _time(step.finished_at),
                "error": step.error,
            },
        )
    for wait in batch.waits:
        opened = wait.status == WaitStatus.WAITING
        add(
            wait.tenant,
            wait.run_id,
            "wait.opened" if opened else "wait.closed",
            f"wait:{wait.seq}:{'open' if opened else 'end'}",
            {
                "runId": wait.run_id,
                "seq": wait.seq,
                "stepPath": wait.step_path,
                "eventNames": wait.event_names,
                "correlationKey": wait.correlation_key,
                "status": str(wait.status),
                "expiresAt": _time(wait.expires_at),
                "eventId": wait.event_id,
            },
        )
    for task in batch.tasks:
        opened = task.status == TaskStatus.OPEN
        add(
            task.tenant,
            task.run_id,
            "task.opened" if opened else "task.closed",
            f"task:{task.id}:{'open' if opened else 'end'}",
            {
                "runId": task.run_id,
                "taskId": task.id,
                "stepPath": task.step_path,
                "title": task.title,
                "status": str(task.status),
                "assignee": task.assignee,
                "role": task.role,
            },
            task.definition_key,
        )
    if closing:
        add_run()
    return out


def _log_row(line: LogLineRecord) -> dict[str, Any]:
    return {
        "tenant": line.tenant,
        "run_id": line.run_id,
        "line_key": f"{line.seq}:{line.attempt}:{line.n}",
        "step_path": line.step_path,
        "loop": line.loop,
        "attempt": line.attempt,
        "level": line.level,
        "message": line.message,
        "fields": line.fields,
        "logged_at": line.logged_at,
    }


async def _insert(session: Executor, batches: Sequence[ProjectionBatch], degraded: bool) -> None:
    rows = [row for batch in batches for row in entries(batch)]
    if not rows:
        return
    lines = [line for batch in batches for line in batch.logs]
    if lines:
        logs = [_log_row(line) for line in lines]
        if degraded:
            logs = [storable_row(RunLogRow.__table__, row) for row in logs]
        await session.execute(_LOG_INSERT, logs)
    payload = json.dumps(storable_json(rows) if degraded else rows, allow_nan=False)
    await session.execute(_INSERT, {"rows": payload, "channel": CHANNEL, "limit": NOTIFY_LIMIT})


async def emit(
    session: Executor,
    batch: ProjectionBatch | Sequence[ProjectionBatch],
    *,
    degraded: bool = False,
) -> None:
    """Add the batch's feed entries (and log lines) in the caller's transaction; several
    batches (a group commit's) in one statement.

    ``degraded``: values PostgreSQL refuses are replaced by markers; entries it still
    refuses are left out (logged), never retried forever.
    """
    batches = [batch] if isinstance(batch, ProjectionBatch) else batch
    if not degraded:
        await _insert(session, batches, False)
        return
    try:
        async with session.begin_nested():
            await _insert(session, batches, True)
    except Exception as err:
        if not is_permanent(err):
            raise
        log.error("run feed entries left out: %s", err)


async def emit_run_closed(
    session: AsyncSession,
    tenant: str,
    run_id: str,
    status: str,
    *,
    error: dict[str, Any] | None = None,
    closed_at: datetime | None = None,
) -> None:
    """The closing ``run.status`` entry of a run whose projection is closed from Temporal
    rather than by a write of the run (e.g. the reconciler), so its streams end at once."""
    found = (
        await session.execute(
            text(
                "SELECT definition_key, definition_version FROM runs "
                "WHERE run_id = :run_id AND tenant = :tenant"
            ),
            {"run_id": run_id, "tenant": tenant},
        )
    ).first()
    data = {
        "runId": run_id,
        "status": str(status),
        "definition": found[0] if found else None,
        "version": found[1] if found else None,
        "error": error,
        "closedAt": _time(closed_at),
    }
    row = {
        "tenant": tenant,
        "run_id": run_id,
        "definition_key": None,
        "kind": "run.status",
        "dedupe": f"run:closed:{status}",
        "data": storable_json(data),
    }
    await session.execute(
        _INSERT, {"rows": json.dumps([row]), "channel": CHANNEL, "limit": NOTIFY_LIMIT}
    )
