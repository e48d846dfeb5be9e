"""The action invocations projection: one row per idempotency key, one per attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import ActionAttempt, ActionInvocation
from projections.records import InvocationRecord


@dataclass(frozen=True)
class InvocationRef:
    """The unique key of an invocation."""

    tenant: str
    action: str
    version: int
    key: str

    def columns(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "action": self.action,
            "action_version": self.version,
            "idempotency_key": self.key,
        }


async def start_invocation(
    session: AsyncSession,
    ref: InvocationRef,
    *,
    run_id: str,
    step_path: str,
    loop: str | None,
    attempt: int,
) -> tuple[str, Any]:
    """Mark the invocation RUNNING (unless it already SUCCEEDED); return its status and
    recorded output. Concurrent attempts serialize on the row."""
    stmt = insert(ActionInvocation).values(
        **ref.columns(),
        run_id=run_id,
        step_path=step_path,
        loop=loop,
        status="RUNNING",
        attempts=attempt,
    )
    current = ActionInvocation.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            current.tenant,
            current.action,
            current.action_version,
            current.idempotency_key,
        ],
        set_={
            "attempts": func.greatest(current.attempts, stmt.excluded.attempts),
            "status": case((current.status == "SUCCEEDED", "SUCCEEDED"), else_="RUNNING"),
        },
    )
    row = (await session.execute(stmt.returning(current.status, current.output))).one()
    return row.status, row.output


async def record_attempt(
    session: AsyncSession,
    ref: InvocationRef,
    *,
    run_id: str,
    attempt: int,
    status: str,
    started_at: datetime,
    finished_at: datetime | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    stmt = insert(ActionAttempt).values(
        **ref.columns(),
        run_id=run_id,
        attempt=attempt,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            ActionAttempt.tenant,
            ActionAttempt.action,
            ActionAttempt.action_version,
            ActionAttempt.idempotency_key,
            ActionAttempt.run_id,
            ActionAttempt.attempt,
        ],
        set_={
            "status": stmt.excluded.status,
            "finished_at": stmt.excluded.finished_at,
            "error": stmt.excluded.error,
        },
    )
    await session.execute(stmt)


async def abandon_earlier_attempts(
    session: AsyncSession, ref: InvocationRef, *, run_id: str, attempt: int
) -> None:
    """Close this run's attempts below ``attempt`` still RUNNING: they never reported
    (their worker died, or they outlived their timeout and Temporal moved on). One that
    reports later still records its real outcome."""
    await session.execute(
        update(ActionAttempt)
        .where(
            ActionAttempt.tenant == ref.tenant,
            ActionAttempt.action == ref.action,
            ActionAttempt.action_version == ref.version,
            ActionAttempt.idempotency_key == ref.key,
            ActionAttempt.run_id == run_id,
            ActionAttempt.attempt < attempt,
            ActionAttempt.status == "RUNNING",
        )
        .values(status="ABANDONED", finished_at=func.now())
    )


def _outcome_upsert() -> Insert:
    stmt = insert(ActionInvocation)
    current = ActionInvocation.__table__.c
    return stmt.on_conflict_do_update(
        index_elements=[
            current.tenant,
            current.action,
            current.action_version,
            current.idempotency_key,
        ],
        set_={
            "attempts": func.greatest(current.attempts, stmt.excluded.attempts),
            "status": stmt.excluded.status,
            "output": stmt.excluded.output,
            "error": stmt.excluded.error,
            "finished_at": stmt.excluded.finished_at,
        },
        where=current.status != "SUCCEEDED",  # a recorded success is never overwritten
    )


def _attempt_upsert() -> Insert:
    stmt = insert(ActionAttempt)
    return stmt.on_conflict_do_update(
        index_elements=[
            ActionAttempt.tenant,
            ActionAttempt.action,
            ActionAttempt.action_version,
            ActionAttempt.idempotency_key,
            ActionAttempt.run_id,
            ActionAttempt.attempt,
        ],
        set_={
            "status": stmt.excluded.status,
            "finished_at": stmt.excluded.finished_at,
            "error": stmt.excluded.error,
        },
    )


OUTCOME_UPSERT = _outcome_upsert()
ATTEMPT_UPSERT = _attempt_upsert()


def outcome_rows(
    records: list[InvocationRecord],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``action_invocations`` and ``action_attempts`` for finished attempts."""
    invocation_rows = [
        {
            "tenant": r.tenant,
            "action": r.action,
            "action_version": r.action_version,
            "idempotency_key": r.idempotency_key,
            "run_id": r.run_id,
            "step_path": r.step_path,
            "loop": r.loop,
            "status": r.invocation_status,
            "attempts": r.attempt,
            "output": r.output,
            "error": r.error,
            "finished_at": r.finished_at,
        }
        for r in records
    ]
    attempt_rows = [
        {
            "tenant": r.tenant,
            "action": r.action,
            "action_version": r.action_version,
            "idempotency_key": r.idempotency_key,
            "run_id": r.run_id,
            "attempt": r.attempt,
            "status": r.status,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "error": r.error,
        }
        for r in records
    ]
    return invocation_rows, attempt_rows
