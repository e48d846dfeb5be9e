"""Idempotent projection upserts (activities retry, so every write may happen twice).

The statements are built once and executed with parameter lists, so SQLAlchemy compiles
each only once per process (multi-row ``VALUES`` would compile per row count).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_
from sqlalchemy.dialects.postgresql import Insert, insert

from projections import feed, invocations
from projections.db import Executor, is_permanent
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
R = TypeVar("R")


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
    session: Executor, stmt: Insert, rows: list[dict[str, Any]], degraded: bool
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


def _latest(records: Iterable[R], key: Callable[[R], Any]) -> list[R]:
    """The latest record per key (a batch may hold two records of one row), ordered by
    key: concurrent writers then lock rows in one order (no deadlock between them)."""
    latest = {key(r): r for r in records}
    return [latest[k] for k in sorted(latest)]


async def upsert_steps(
    session: Executor, steps: list[StepRecord], *, degraded: bool = False
) -> None:
    """Insert or update steps keyed by (run_id, seq)."""
    rows = [s.model_dump() for s in _latest(steps, lambda s: (s.run_id, s.seq))]
    await _execute(session, STEP_UPSERT, rows, degraded)


async def upsert_run(session: Executor, run: RunRecord, *, degraded: bool = False) -> None:
    """Insert or update the run row keyed by run_id."""
    await upsert_runs(session, [run], degraded=degraded)


async def upsert_runs(session: Executor, runs: list[RunRecord], *, degraded: bool = False) -> None:
    """Insert or update run rows keyed by run_id (in order: a later record of one run
    is written after an earlier one)."""
    rows = [r.model_dump() for r in sorted(runs, key=lambda r: r.run_id)]
    await _execute(session, RUN_UPSERT, rows, degraded)


async def upsert_waits(
    session: Executor, waits: list[WaitRecord], *, degraded: bool = False
) -> None:
    rows = [w.model_dump() for w in _latest(waits, lambda w: (w.run_id, w.seq))]
    await _execute(session, WAIT_UPSERT, rows, degraded)


async def upsert_tasks(
    session: Executor, tasks: list[TaskRecord], *, degraded: bool = False
) -> None:
    rows = [t.model_dump() for t in _latest(tasks, lambda t: t.id)]
    await _execute(session, TASK_UPSERT, rows, degraded)


async def upsert_deliveries(
    session: Executor, deliveries: list[DeliveryRecord], *, degraded: bool = False
) -> None:
    ordered = sorted(deliveries, key=lambda d: (d.tenant, d.event_id, d.run_id))
    rows = [{**d.model_dump(), "kind": "wait"} for d in ordered]
    await _execute(session, DELIVERY_UPSERT, rows, degraded)


async def upsert_invocations(
    session: Executor, records: list[InvocationRecord], *, degraded: bool = False
) -> None:
    """Finished attempts of action invocations (and the invocations' outcomes)."""
    ordered = sorted(
        records, key=lambda r: (r.tenant, r.action, r.action_version, r.idempotency_key)
    )
    invocation_rows, attempt_rows = invocations.outcome_rows(ordered)
    if degraded:
        # A recorded output is returned to later executions: keep it whole.
        for row in invocation_rows:
            row["output"] = lossless_json(row["output"])
    await _execute(session, invocations.OUTCOME_UPSERT, invocation_rows, degraded)
    await _execute(session, invocations.ATTEMPT_UPSERT, attempt_rows, degraded)


async def write_batch(session: Executor, batch: ProjectionBatch, *, degraded: bool = False) -> None:
    """Write a batch in one transaction owned by the caller.

    ``degraded`` (after a permanent data error): values PostgreSQL rejects are replaced
    by markers, and a row that still fails is left out.
    """
    await write_batches(session, [batch], degraded=degraded)


async def write_batches(
    session: Executor, batches: Sequence[ProjectionBatch], *, degraded: bool = False
) -> None:
    """Write several batches (of any runs) together: one statement per table, each
    executed with all its rows. Records of one row keep their order (the latest wins)."""
    await upsert_steps(session, [s for b in batches for s in b.steps], degraded=degraded)
    await upsert_waits(session, [w for b in batches for w in b.waits], degraded=degraded)
    await upsert_tasks(session, [t for b in batches for t in b.tasks], degraded=degraded)
    await upsert_deliveries(session, [d for b in batches for d in b.deliveries], degraded=degraded)
    await upsert_invocations(
        session, [i for b in batches for i in b.invocations], degraded=degraded
    )
    await upsert_runs(session, [b.run for b in batches if b.run is not None], degraded=degraded)
    await feed.emit(session, batches, degraded=degraded)  # live streams, run logs
