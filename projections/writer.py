"""Idempotent projection upserts (activities retry, so every write may happen twice).

The statements are built once and executed with parameter lists, so SQLAlchemy compiles
each only once per process (multi-row ``VALUES`` would compile per row count).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, literal_column, or_
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import EventDeliveryRow, HumanTaskRow, RunRow, StepRow, WaitRow
from projections.records import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    DeliveryRecord,
    DeliveryStatus,
    ProjectionBatch,
    RunRecord,
    StepRecord,
    TaskRecord,
    TaskStatus,
    WaitRecord,
    WaitStatus,
)


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


async def upsert_steps(session: AsyncSession, steps: list[StepRecord]) -> None:
    """Insert or update steps keyed by (run_id, seq)."""
    if not steps:
        return
    # Keep the latest record per sequence (a batch may hold two records of one step).
    latest = {s.seq: s for s in steps}
    await session.execute(STEP_UPSERT, [s.model_dump() for s in latest.values()])


async def upsert_run(session: AsyncSession, run: RunRecord) -> None:
    """Insert or update the run row keyed by run_id."""
    await session.execute(RUN_UPSERT, [run.model_dump()])


async def upsert_waits(session: AsyncSession, waits: list[WaitRecord]) -> None:
    if waits:
        latest = {w.seq: w for w in waits}
        await session.execute(WAIT_UPSERT, [w.model_dump() for w in latest.values()])


async def upsert_tasks(session: AsyncSession, tasks: list[TaskRecord]) -> None:
    if tasks:
        latest = {t.id: t for t in tasks}
        await session.execute(TASK_UPSERT, [t.model_dump() for t in latest.values()])


async def upsert_deliveries(session: AsyncSession, deliveries: list[DeliveryRecord]) -> None:
    if deliveries:
        rows = [{**d.model_dump(), "kind": "wait"} for d in deliveries]
        await session.execute(DELIVERY_UPSERT, rows)


async def write_batch(session: AsyncSession, batch: ProjectionBatch) -> None:
    """Write a batch in one transaction owned by the caller."""
    await upsert_steps(session, batch.steps)
    await upsert_waits(session, batch.waits)
    await upsert_tasks(session, batch.tasks)
    await upsert_deliveries(session, batch.deliveries)
    if batch.run is not None:
        await upsert_run(session, batch.run)
