"""The action activity: validate input, run the registered handler, project the step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.registry import ActionContext, ActionError, ActionRegistry
from projections.records import ProjectionBatch, StepRecord, StepStatus
from projections.writer import write_batch
from temporal_workflows.models import PROJECT_ACTIVITY, ActionInvocation, ActionOutcome


def _now() -> datetime:
    return datetime.now(UTC)


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

    @activity.defn(dynamic=True)
    async def invoke_action(self, args: Sequence[RawValue]) -> ActionOutcome:
        """Run the action named by the activity type.

        One transaction per attempt: the records the workflow buffered plus this step as
        RUNNING with its attempt number; a failed attempt also records its error.
        """
        info = activity.info()
        inv = activity.payload_converter().from_payload(args[0].payload, ActionInvocation)
        started = _now()
        step = StepRecord(
            run_id=inv.run_id,
            tenant=inv.tenant,
            seq=inv.seq,
            path=inv.step_path,
            step_id=inv.step_id,
            type="action.call",
            status=StepStatus.RUNNING,
            attempt=info.attempt,
            started_at=started,
            input=inv.input,
        )
        batch = inv.pending.model_copy(update={"steps": [*inv.pending.steps, step]})
        await self._write(batch)
        try:
            output = await self._run(inv, info.attempt)
        except Exception as err:
            failed = step.model_copy(update={"error": _error_dict(err), "finished_at": _now()})
            await self._write(ProjectionBatch(steps=[failed]))
            raise
        # The SUCCEEDED record travels back with the result: the workflow buffers it and
        # the next write carries it, so a step costs one transaction, not two.
        return ActionOutcome(output=output, attempt=info.attempt)

    async def _run(self, inv: ActionInvocation, attempt: int) -> Any:
        spec = self.registry.get(inv.action)
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


def _error_dict(err: Exception) -> dict[str, Any]:
    if not isinstance(err, ApplicationError):
        return {"type": type(err).__name__, "message": str(err), "retryable": True}
    return {
        "type": err.type or "ApplicationError",
        "message": err.message,
        "retryable": not err.non_retryable,
        "details": list(err.details) or None,
    }
