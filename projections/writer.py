"""Idempotent projection upserts (activities retry, so every write may happen twice).

The statements are built once and executed with parameter lists, so SQLAlchemy compiles
each only once per process (multi-row ``VALUES`` would compile per row count).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, literal_column, or_
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import RunRow, StepRow
from projections.records import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    ProjectionBatch,
    RunRecord,
    StepRecord,
)


def _literals(values: frozenset[str]) -> list[ColumnElement[str]]:
    # Inline constants: executemany cannot expand IN-list parameters.
    return [literal_column(f"'{v}'") for v in sorted(values)]


_TERMINAL_STEP = _literals(TERMINAL_STEP)
_TERMINAL_RUN = _literals(TERMINAL_RUN)


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


STEP_UPSERT = _step_upsert()
RUN_UPSERT = _run_upsert()


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


async def write_batch(session: AsyncSession, batch: ProjectionBatch) -> None:
    """Write a batch in one transaction owned by the caller."""
    await upsert_steps(session, batch.steps)
    if batch.run is not None:
        await upsert_run(session, batch.run)
