"""Idempotent projection upserts (activities retry, so every write may happen twice)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import RunRow, StepRow
from projections.records import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    ProjectionBatch,
    RunRecord,
    StepRecord,
)

_TERMINAL_STEP = [s.value for s in TERMINAL_STEP]
_TERMINAL_RUN = [s.value for s in TERMINAL_RUN]


async def upsert_steps(session: AsyncSession, steps: list[StepRecord]) -> None:
    """Insert or update steps keyed by (run_id, seq); a finished step is never reopened."""
    if not steps:
        return
    # One statement cannot touch a row twice: keep the latest record per sequence.
    latest = {s.seq: s for s in steps}
    rows = [s.model_dump() for s in latest.values()]
    stmt = insert(StepRow).values(rows)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
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
        where=or_(
            StepRow.status.not_in(_TERMINAL_STEP), excluded.status.in_(_TERMINAL_STEP)
        ),
    )
    await session.execute(stmt)


async def upsert_run(session: AsyncSession, run: RunRecord) -> None:
    """Insert or update the run row; an older sequence or a closed run is never overwritten."""
    row = run.model_dump()
    stmt = insert(RunRow).values(**row)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[RunRow.run_id],
        set_={
            "status": excluded.status,
            "seq": excluded.seq,
            "output": excluded.output,
            "error": excluded.error,
            "closed_at": excluded.closed_at,
            "updated_at": func.now(),
        },
        where=and_(RunRow.seq <= excluded.seq, RunRow.status.not_in(_TERMINAL_RUN)),
    )
    await session.execute(stmt)


async def write_batch(session: AsyncSession, batch: ProjectionBatch) -> None:
    """Write a batch in one transaction owned by the caller."""
    await upsert_steps(session, batch.steps)
    if batch.run is not None:
        await upsert_run(session, batch.run)
