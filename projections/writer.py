"""Idempotent projection upserts (activities retry, so every write may happen twice).

The statements are built once and executed with parameter lists, so SQLAlchemy compiles
each only once per process (multi-row ``VALUES`` would compile per row count).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import feed, invocations
from projections.db import is_permanent
from projections.models import EventDeliveryRow, HumanTaskRow, RunRow, StepRow, WaitRow
from projections.storable import lossless_json, storable_row
from tempoflow.records import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    DeliveryRecord,
    DeliveryStatus,
    InvocationRecord,
    ProjectionBatch,
    RunRecord,
    RunStatus,
    StepRecord,
    TaskRecord,
    TaskStatus,
    WaitRecord,
    WaitStatus,
)

log = logging.getLogger("tempoflow.projections")


def _literals(values: frozenset[str]) -> list[ColumnElement[str]]:
    # Inline constants: executemany cannot expand IN-list parameters.
    return [literal_column(f"'{v}'") for v in sorted(values)]


_TERMINAL_STEP = _literals(TERMINAL_STEP)
_TERMINAL_RUN = _literals(TERMINAL_RUN)
_OPEN_WAIT = _literals(frozenset({WaitStatus.WAITING}))
_OPEN_TASK = _literals(frozenset({TaskStatus.OPEN}))
# Progress (PENDING, SIGNALED) may be overwritten by anything; a run's verdict (APPLIED,
# FILTERED, DEFERRED) overwrites anything but APPLIED (final); other outcomes (RUN_CLOSED,
# EXPIRED…) never overwrite a verdict: a run that took the event from its buffer and
# closed stays APPLIED.
_DISPATCHER_SIDE = _literals(frozenset({DeliveryStatus.PENDING, DeliveryStatus.SIGNALED}))
_RUN_VERDICT = _literals(frozenset({DeliveryStatus.FILTERED, DeliveryStatus.DEFERRED}))


def _step_upsert() -> Insert:
    stmt = insert(StepRow)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[StepRow.run_id, StepRow.seq],
        set_={
            "status": excluded.status,
            # The workflow records a failed action step without knowing the attempt or
            # the resolved input; keep what the activity wrote.
            "attempt": func.coalesce(excluded.attempt, StepRow.attempt),
            "finished_at": excluded.finished_at,
            "input": func.coalesce(excluded.input, StepRow.input),
            "output": excluded.output,
            "error": excluded.error,
        },
        # A finished step is never reopened by a late or repeated write.
        where=or_(StepRow.status.not_in(_TERMINAL_STEP), excluded.status.in_(_TERMINAL_STEP)),
    )


def _run_upsert() -> Insert:
    stmt = insert(RunRow)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[RunRow.run_id],
        set_={
            "status": excluded.status,
            "seq": excluded.seq,
            "output": excluded.output,
            "error": excluded.error,
            "closed_at": excluded.closed_at,
            # A delayed run's row (written SCHEDULED by the API) takes its real start.
            "started_at": case(
                (RunRow.status == str(RunStatus.SCHEDULED), excluded.started_at),
                else_=RunRow.started_at,
            ),
            "updated_at": func.now(),
        },
        # An older sequence or a closed run is never overwritten.
        where=and_(RunRow.seq <= excluded.seq, RunRow.status.not_in(_TERMINAL_RUN)),
    )


def _wait_upsert() -> Insert:
    stmt = insert(WaitRow)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[WaitRow.run_id, WaitRow.seq],
        set_={
            "status": excluded.status,
            "closed_at": excluded.closed_at,
            "event_id": excluded.event_id,
        },
        where=WaitRow.status.in_(_OPEN_WAIT),  # a closed wait stays closed
    )


def _task_upsert() -> Insert:
    stmt = insert(HumanTaskRow)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[HumanTaskRow.id],
        set_={
            "status": excluded.status,
            "completed_at": excluded.completed_at,
            "completed_by": excluded.completed_by,
            "data": excluded.data,
        },
        where=HumanTaskRow.status.in_(_OPEN_TASK),
    )


def delivery_upsert() -> Insert:
    """Upsert of event deliveries: later verdicts win over the dispatcher's progress."""
    stmt = insert(EventDeliveryRow)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[
            EventDeliveryRow.tenant,
            EventDeliveryRow.event_id,
            EventDeliveryRow.run_id,
        ],
        set_={
            "status": excluded.status,
            "reason": excluded.reason,
            "step_path": func.coalesce(excluded.step_path, EventDeliveryRow.step_path),
            "updated_at": func.now(),
        },
        where=or_(
            EventDeliveryRow.status.in_(_DISPATCHER_SIDE),
            excluded.status == literal_column(f"'{DeliveryStatus.APPLIED}'"),
            and_(
                excluded.status.in_(_RUN_VERDICT),
                EventDeliveryRow.status != literal_column(f"'{DeliveryStatus.APPLIED}'"),
            ),
        ),
    )


STEP_UPSERT = _step_upsert()
RUN_UPSERT = _run_upsert()
WAIT_UPSERT = _wait_upsert()
TASK_UPSERT = _task_upsert()
DELIVERY_UPSERT = delivery_upsert()


async def _execute(
    session: AsyncSession, stmt: Insert, rows: list[dict[str, Any]], degraded: bool
) -> None:
    if not rows:
        return
    if not degraded:
        await session.execute(stmt, rows)
        return
    # Degraded: storable values, one row at a time, and a row that still fails is left
    # out (logged) rather than retried forever.
    table = stmt.table
    for row in rows:
        try:
            async with session.begin_nested():
                await session.execute(stmt, [storable_row(table, row)])
        except Exception as err:
            if not is_permanent(err):
                raise
            log.error("projection row of %s left out: %s", table.name, err)


async def upsert_steps(
    session: AsyncSession, steps: list[StepRecord], *, degraded: bool = False
) -> None:
    """Insert or update steps keyed by (run_id, seq)."""
    # Keep the latest record per sequence (a batch may hold two records of one step).
    latest = {s.seq: s for s in steps}
    await _execute(session, STEP_UPSERT, [s.model_dump() for s in latest.values()], degraded)


async def upsert_run(session: AsyncSession, run: RunRecord, *, degraded: bool = False) -> None:
    """Insert or update the run row keyed by run_id."""
    await _execute(session, RUN_UPSERT, [run.model_dump()], degraded)


async def upsert_waits(
    session: AsyncSession, waits: list[WaitRecord], *, degraded: bool = False
) -> None:
    latest = {w.seq: w for w in waits}
    await _execute(session, WAIT_UPSERT, [w.model_dump() for w in latest.values()], degraded)


async def upsert_tasks(
    session: AsyncSession, tasks: list[TaskRecord], *, degraded: bool = False
) -> None:
    latest = {t.id: t for t in tasks}
    await _execute(session, TASK_UPSERT, [t.model_dump() for t in latest.values()], degraded)


async def upsert_deliveries(
    session: AsyncSession, deliveries: list[DeliveryRecord], *, degraded: bool = False
) -> None:
    rows = [{**d.model_dump(), "kind": "wait"} for d in deliveries]
    await _execute(session, DELIVERY_UPSERT, rows, degraded)


async def upsert_invocations(
    session: AsyncSession, records: list[InvocationRecord], *, degraded: bool = False
) -> None:
    """Finished attempts of action invocations (and the invocations' outcomes)."""
    invocation_rows, attempt_rows = invocations.outcome_rows(records)
    if degraded:
        # A recorded output is returned to later executions: keep it whole.
        for row in invocation_rows:
            row["output"] = lossless_json(row["output"])
    await _execute(session, invocations.OUTCOME_UPSERT, invocation_rows, degraded)
    await _execute(session, invocations.ATTEMPT_UPSERT, attempt_rows, degraded)


async def write_batch(
    session: AsyncSession, batch: ProjectionBatch, *, degraded: bool = False
) -> None:
    """Write a batch in one transaction owned by the caller.

    ``degraded`` (after a permanent data error): values PostgreSQL rejects are replaced
    by markers, and a row that still fails is left out.
    """
    await upsert_steps(session, batch.steps, degraded=degraded)
    await upsert_waits(session, batch.waits, degraded=degraded)
    await upsert_tasks(session, batch.tasks, degraded=degraded)
    await upsert_deliveries(session, batch.deliveries, degraded=degraded)
    await upsert_invocations(session, batch.invocations, degraded=degraded)
    if batch.run is not None:
        await upsert_run(session, batch.run, degraded=degraded)
    await feed.emit(session, batch, degraded=degraded)  # live streams, run logs
