"""The action invocations projection: one row per idempotency key, one per attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.db import Executor
from projections.models import ActionAttempt, ActionInvocation
from tempoflow.records import InvocationRecord


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


def claim_owner(run_id: str, step_path: str, loop: str | None) -> str:
    """Who holds a claim: one step (of one loop iteration) of one run."""
    return f"{run_id} {step_path}" + (f" {loop}" if loop is not None else "")


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an invocation."""

    status: str
    """SUCCEEDED (``output`` is the recorded output), RUNNING (claimed: run the
    handler) or HELD (another step holds a live claim: do not run the handler)."""
    output: Any = None
    held_by: str | None = None
    held_until: datetime | None = None


async def start_invocation(
    session: Executor,
    ref: InvocationRef,
    *,
    run_id: str,
    step_path: str,
    loop: str | None,
    attempt: int,
    lease: timedelta,
) -> Claim:
    """Claim the invocation for this attempt until ``lease`` from now.

    A recorded success is returned instead. A claim held by another step (another run,
    or another iteration) whose lease has not ended is left alone (``HELD``); the same
    step's later attempt takes its own claim over at once, and anyone takes over a claim
    whose lease ended or whose attempt recorded its outcome. Concurrent claimants
    serialize on the row (database clock).
    """
    owner = claim_owner(run_id, step_path, loop)
    current = ActionInvocation.__table__.c
    until = func.now() + lease
    inserted = await session.execute(
        insert(ActionInvocation)
        .values(
            **ref.columns(),
            run_id=run_id,
            step_path=step_path,
            loop=loop,
            status="RUNNING",
            attempts=attempt,
            claimed_by=owner,
            claimed_attempt=attempt,
            claimed_until=until,
        )
        .on_conflict_do_nothing()
        .returning(current.status)
    )
    if inserted.first() is not None:
        return Claim("RUNNING")
    key = (
        (current.tenant == ref.tenant)
        & (current.action == ref.action)
        & (current.action_version == ref.version)
        & (current.idempotency_key == ref.key)
    )
    row = (
        await session.execute(
            select(
                current.status,
                current.output,
                current.claimed_by,
                current.claimed_until,
                (current.claimed_until > func.now()).label("live"),
            )
            .where(key)
            .with_for_update()
        )
    ).one()
    if row.status == "SUCCEEDED":
        return Claim("SUCCEEDED", row.output)
    if row.claimed_by not in (None, owner) and row.live:
        return Claim("HELD", held_by=row.claimed_by, held_until=row.claimed_until)
    await session.execute(
        update(ActionInvocation)
        .where(key)
        .values(
            status="RUNNING",
            attempts=func.greatest(current.attempts, attempt),
            claimed_by=owner,
            claimed_attempt=attempt,
            claimed_until=until,
        )
    )
    return Claim("RUNNING")


async def record_attempt(
    session: Executor,
    ref: InvocationRef,
    *,
    run_id: str,
    attempt: int,
    status: str,
    started_at: datetime,
    finished_at: datetime | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    row = {
        **ref.columns(),
        "run_id": run_id,
        "attempt": attempt,
        "status": status,
        "started_at": started_at,
        "finished_at": finished_at,
        "error": error,
    }
    await session.execute(ATTEMPT_UPSERT, [row])


async def abandon_earlier_attempts(
    session: Executor, ref: InvocationRef, *, run_id: str, attempt: int
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


@dataclass(frozen=True)
class ClaimRequest:
    """An attempt claiming its invocation before its handler runs."""

    ref: InvocationRef
    run_id: str
    step_path: str
    loop: str | None
    attempt: int
    started_at: datetime
    lease: timedelta


async def claim(session: Executor, request: ClaimRequest) -> Claim:
    """Claim the invocation for the attempt (``start_invocation``) and record the
    attempt: ``RUNNING``, or ``DEDUPLICATED`` when a recorded success is returned; the
    same run's earlier attempts still ``RUNNING`` are closed as abandoned."""
    ref, attempt = request.ref, request.attempt
    found = await start_invocation(
        session,
        ref,
        run_id=request.run_id,
        step_path=request.step_path,
        loop=request.loop,
        attempt=attempt,
        lease=request.lease,
    )
    if found.status == "HELD":
        return found  # not an attempt (yet): nothing more to record
    succeeded = found.status == "SUCCEEDED"
    await record_attempt(
        session,
        ref,
        run_id=request.run_id,
        attempt=attempt,
        started_at=request.started_at,
        status="DEDUPLICATED" if succeeded else "RUNNING",
        finished_at=request.started_at if succeeded else None,
    )
    if attempt > 1:
        await abandon_earlier_attempts(session, ref, run_id=request.run_id, attempt=attempt)
    return found


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
            "claimed_until": None,  # the claim ends with its attempt's outcome
        },
        # A recorded success is never overwritten; a late failure of an attempt whose
        # claim a later one has taken over (its lease had ended, or it was the same
        # step's earlier attempt) leaves that claim be.
        where=(current.status != "SUCCEEDED")
        & (
            (stmt.excluded.status == "SUCCEEDED")
            | current.claimed_until.is_(None)
            | (current.claimed_until <= func.now())
            | (
                (current.claimed_by == stmt.excluded.claimed_by)
                & (current.claimed_attempt <= stmt.excluded.attempts)
            )
        ),
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
            "claimed_by": claim_owner(r.run_id, r.step_path, r.loop),
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


async def list_invocations(
    session: AsyncSession, tenant: str, run_id: str
) -> list[tuple[ActionInvocation, list[ActionAttempt]]]:
    """A run's action invocations (by idempotency key) with this run's attempts."""
    invocations = list(
        (
            await session.execute(
                select(ActionInvocation)
                .where(ActionInvocation.tenant == tenant, ActionInvocation.run_id == run_id)
                .order_by(ActionInvocation.created_at)
            )
        ).scalars()
    )
    attempts = list(
        (
            await session.execute(
                select(ActionAttempt)
                .where(ActionAttempt.tenant == tenant, ActionAttempt.run_id == run_id)
                .order_by(ActionAttempt.attempt)
            )
        ).scalars()
    )
    by_key: dict[str, list[ActionAttempt]] = {}
    for attempt in attempts:
        by_key.setdefault(attempt.idempotency_key, []).append(attempt)
    return [(inv, by_key.get(inv.idempotency_key, [])) for inv in invocations]
