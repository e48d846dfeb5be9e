"""The action activity: deduplicate by idempotency key, validate input, run the handler,
record the invocation and its attempts, project the step."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.registry import ActionContext, ActionError, ActionRegistry, ActionSpec
from activities.waits import sendable
from projections import invocations, routing
from projections.models import DefinitionRow, DefinitionVersionRow
from projections.records import ProjectionBatch, StepRecord, StepStatus
from projections.writer import write_batch
from temporal_workflows.models import (
    PROJECT_ACTIVITY,
    REGISTER_WAIT_ACTIVITY,
    RESOLVE_DEFINITION_ACTIVITY,
    ActionInvocation,
    ActionOutcome,
    DefinitionRef,
    DefinitionRequest,
    EventDelivery,
    RegisterWait,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _error_dict(err: BaseException) -> dict[str, Any]:
    if isinstance(err, ApplicationError):
        return {
            "type": err.type or "ApplicationError",
            "message": err.message,
            "retryable": not err.non_retryable,
            "details": list(err.details) or None,
        }
    return {"type": type(err).__name__, "message": str(err), "retryable": True}


class TempoflowActivities:
    """Activities bound to the worker's dependencies (registry, database)."""

    def __init__(
        self, registry: ActionRegistry, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.registry = registry
        self.sessions = sessions

    async def _write(self, batch: ProjectionBatch) -> None:
        if batch.is_empty():
            return
        async with self.sessions.begin() as session:
            await write_batch(session, batch)

    @activity.defn(name=PROJECT_ACTIVITY)
    async def project(self, batch: ProjectionBatch) -> None:
        """Write a batch of projection records (idempotent)."""
        await self._write(batch)

    @activity.defn(name=REGISTER_WAIT_ACTIVITY)
    async def register_wait(self, request: RegisterWait) -> list[EventDelivery]:
        """Index a wait under the routing lock; the buffered events it may take.

        Ends rather than retrying forever when retrying cannot help: data PostgreSQL
        refuses fails the wait (``WaitRegistrationFailed``, catchable); an event that
        cannot be encoded for the run is left out with a ``FAILED`` delivery.
        """
        try:
            async with self.sessions.begin() as session:
                events = await routing.register_wait(
                    session,
                    request.wait,
                    request.buffered_limit,
                    request.pending,
                    max_bytes=request.buffered_bytes,
                    after_seq=request.after_seq,
                )
                return await sendable(session, request.wait, events)
        except DataError as err:
            raise ApplicationError(
                f"the wait cannot be registered: {err.orig}",
                type="WaitRegistrationFailed",
                non_retryable=True,
            ) from None

    @activity.defn(name=RESOLVE_DEFINITION_ACTIVITY)
    async def resolve_definition(self, request: DefinitionRequest) -> DefinitionRef:
        """The published version a child run pins (latest when no version is given)."""
        async with self.sessions() as session:
            number = request.version
            if number is None:
                number = await session.scalar(
                    select(DefinitionRow.latest_version).where(
                        DefinitionRow.tenant == request.tenant, DefinitionRow.key == request.key
                    )
                )
            row = (
                None
                if number is None
                else await session.get(DefinitionVersionRow, (request.tenant, request.key, number))
            )
        if row is None:
            which = f"version {request.version}" if request.version else "a published version"
            raise ApplicationError(
                f"definition {request.key!r} has no {which}",
                type="DefinitionNotFound",
                non_retryable=True,
            )
        return DefinitionRef(key=row.key, version=row.version, body=row.body)

    @activity.defn(dynamic=True)
    async def invoke_action(self, args: Sequence[RawValue]) -> ActionOutcome:
        """Run the action named by the activity type.

        A successful invocation costs two transactions: before the handler (buffered
        records, the step as RUNNING, the invocation claimed) and after it (the recorded
        output that a re-execution returns instead of repeating the side effect).
        """
        info = activity.info()
        inv = activity.payload_converter().from_payload(args[0].payload, ActionInvocation)
        spec = self.registry.get(inv.action)
        version = spec.version if spec else 0
        ids = invocations.InvocationRef(inv.tenant, inv.action, version, inv.idempotency_key)
        started = _now()
        step = StepRecord(
            run_id=inv.run_id,
            tenant=inv.tenant,
            seq=inv.seq,
            path=inv.step_path,
            loop=inv.loop,
            step_id=inv.step_id,
            type="action.call",
            status=StepStatus.RUNNING,
            attempt=info.attempt,
            started_at=started,
            input=inv.input,
        )
        async with self.sessions.begin() as session:
            await write_batch(
                session, inv.pending.model_copy(update={"steps": [*inv.pending.steps, step]})
            )
            status, recorded = await invocations.start_invocation(
                session,
                ids,
                run_id=inv.run_id,
                step_path=inv.step_path,
                loop=inv.loop,
                attempt=info.attempt,
            )
            await invocations.record_attempt(
                session,
                ids,
                run_id=inv.run_id,
                attempt=info.attempt,
                started_at=started,
                status="DEDUPLICATED" if status == "SUCCEEDED" else "RUNNING",
                finished_at=started if status == "SUCCEEDED" else None,
            )
        if status == "SUCCEEDED":
            return ActionOutcome(output=recorded, attempt=info.attempt, deduplicated=True)
        try:
            output = await self._run(inv, spec, info.attempt)
        except asyncio.CancelledError:
            await asyncio.shield(
                self._close(ids, inv.run_id, info.attempt, started, "CANCELED", None)
            )
            raise
        except Exception as err:
            error = _error_dict(err)
            final = (isinstance(err, ApplicationError) and err.non_retryable) or (
                info.retry_policy is not None
                and info.retry_policy.maximum_attempts > 0
                and info.attempt >= info.retry_policy.maximum_attempts
            )
            await self._close(
                ids,
                inv.run_id,
                info.attempt,
                started,
                "FAILED",
                error,
                invocation="FAILED" if final else "RETRYING",
                step=step,
            )
            if isinstance(err, ApplicationError):
                # The attempt number travels with the error (catch blocks show it).
                raise ApplicationError(
                    err.message,
                    {"attempt": info.attempt, "details": error["details"]},
                    type=err.type,
                    non_retryable=err.non_retryable,
                ) from err
            raise
        async with self.sessions.begin() as session:
            await invocations.finish_invocation(
                session, ids, status="SUCCEEDED", output=output, finished_at=_now()
            )
            await invocations.record_attempt(
                session,
                ids,
                run_id=inv.run_id,
                attempt=info.attempt,
                status="SUCCEEDED",
                started_at=started,
                finished_at=_now(),
            )
        # The step's SUCCEEDED record travels back with the result: the workflow buffers
        # it and its next write carries it.
        return ActionOutcome(output=output, attempt=info.attempt)

    async def _close(
        self,
        ids: invocations.InvocationRef,
        run_id: str,
        attempt: int,
        started: datetime,
        status: str,
        error: dict[str, Any] | None,
        *,
        invocation: str | None = None,
        step: StepRecord | None = None,
    ) -> None:
        async with self.sessions.begin() as session:
            await invocations.record_attempt(
                session,
                ids,
                run_id=run_id,
                attempt=attempt,
                status=status,
                started_at=started,
                finished_at=_now(),
                error=error,
            )
            if invocation is not None:
                await invocations.finish_invocation(
                    session, ids, status=invocation, error=error, finished_at=_now()
                )
            if step is not None:
                failed = step.model_copy(update={"error": error, "finished_at": _now()})
                await write_batch(session, ProjectionBatch(steps=[failed]))

    async def _run(
        self, inv: ActionInvocation, spec: ActionSpec[Any, Any] | None, attempt: int
    ) -> Any:
        if spec is None:
            raise ApplicationError(
                f"action {inv.action!r} is not registered on this worker",
                type="ActionNotFound",
                non_retryable=True,
            )
        try:
            data = spec.input_model.model_validate(inv.input)
        except ValidationError as err:
            raise ApplicationError(
                f"invalid input for {inv.action}: {err.error_count()} error(s)",
                err.errors(include_url=False, include_context=False),
                type="ActionInputError",
                non_retryable=True,
            ) from None
        ctx = ActionContext(
            tenant=inv.tenant,
            run_id=inv.run_id,
            workflow_id=inv.workflow_id,
            step_path=inv.step_path,
            step_id=inv.step_id,
            attempt=attempt,
            idempotency_key=inv.idempotency_key,
            logger=activity.logger,
            heartbeat=activity.heartbeat,
        )
        try:
            result = await spec.handler(data, ctx)
        except ActionError as err:
            raise ApplicationError(
                err.message, err.details, type=err.type, non_retryable=not err.retryable
            ) from err
        try:
            return spec.output_model.model_validate(result).model_dump(mode="json")
        except ValidationError as err:
            raise ApplicationError(
                f"action {inv.action} returned invalid output: {err.error_count()} error(s)",
                type="ActionOutputError",
                non_retryable=True,
            ) from None
