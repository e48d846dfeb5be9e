"""The action activity: deduplicate by idempotency key, validate input, run the handler,
record the invocation and its attempts, project the step."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

from activities import metrics, runlogs
from activities.registry import ActionContext, ActionError, ActionRegistry, ActionSpec
from activities.secrets import SecretResolver, masked_heartbeat, projected_input
from activities.waits import sendable
from projections import definitions, invocations, routing
from projections.db import is_permanent, is_transient
from projections.group import GroupWriter
from projections.storable import restore_json, storable_json
from projections.writer import write_batch
from tempoflow.definition.model import ActionCall, type_of
from tempoflow.error_types import ErrorType
from tempoflow.keyring import Keyring
from tempoflow.records import (
    InvocationRecord,
    ProjectionBatch,
    StepRecord,
    StepStatus,
)
from tempoflow.settings import Settings
from temporal_workflows.models import (
    PROJECT_ACTIVITY,
    REGISTER_WAIT_ACTIVITY,
    RESOLVE_DEFINITION_ACTIVITY,
    ActionFailure,
    ActionInvocation,
    ActionOutcome,
    BookkeepingInterrupted,
    DefinitionRef,
    DefinitionRequest,
    EventDelivery,
    RegisterWait,
)

log = logging.getLogger("tempoflow.activities")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

BOOKKEEPING_WAIT = 5.0
"""Seconds an action attempt waits at most for an unreachable database before it gives
the attempt back to the workflow (which waits on a timer and schedules it again)."""
CLAIM_MIN_TIMEOUT = 1.0
CLAIM_LEASE_GRACE = 1.0
"""Seconds a claim's lease outlasts its attempt's deadline."""
CLAIM_LEASE_DEFAULT = 600.0
"""Lease of a claim whose attempt has no deadline (seconds)."""
RECORD_TIMEOUT = 5.0
"""Seconds an attempt spends at most recording its outcome."""
BACKLOG_LIMIT = 10_000
"""Unwritten attempt outcomes a worker keeps (oldest dropped first)."""


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


def _decode(raw: RawValue, model: type[M]) -> M:
    """A projection payload. JSON nested deeper than the data converter reads (about 200
    levels) is cut, with markers, rather than failing every retry."""
    try:
        return activity.payload_converter().from_payload(raw.payload, model)
    except Exception as err:
        try:
            data = json.loads(raw.payload.data)
        except (ValueError, RecursionError):
            raise err from None
        log.warning("projection payload degraded: %s", err)
        return model.model_validate(storable_json(data))


def _capped_delay(delay: timedelta | None, policy: RetryPolicy | None) -> timedelta | None:
    """An action's requested retry delay, no longer than the step's ``maxInterval``."""
    if delay is None or policy is None or policy.maximum_interval is None:
        return delay
    return min(delay, policy.maximum_interval)


def _beat(info: activity.Info) -> None:
    """Heartbeat, except in a local activity (which has none)."""
    if not info.is_local:
        activity.heartbeat()


def _no_heartbeat(*details: Any) -> None:
    """``ActionContext.heartbeat`` of a local action: nothing to report to."""


class BookkeepingUnavailableError(Exception):
    """The invocation could not be claimed within the attempt's waiting budget."""


class ClaimHeldError(Exception):
    """Another step held a live claim on the key all through the attempt's waiting
    budget."""

    def __init__(self, claim: invocations.Claim) -> None:
        super().__init__(claim.held_by)
        self.claim = claim


def _wait_budget(info: activity.Info, started: float) -> float:
    """Seconds an attempt may wait for the database before giving the attempt back: a
    tenth of its time left (at most ``BOOKKEEPING_WAIT``), so the handler keeps at least
    nine tenths of its ``startToClose``."""
    left = _time_left(info, started)
    return min(BOOKKEEPING_WAIT, 0.1 * left) if left is not None else BOOKKEEPING_WAIT


def _time_left(info: activity.Info, started: float) -> float | None:
    """Seconds until the attempt's start-to-close or schedule-to-close deadline."""
    lefts = []
    if info.start_to_close_timeout is not None:
        lefts.append(info.start_to_close_timeout.total_seconds() - (time.monotonic() - started))
    if info.schedule_to_close_timeout is not None:
        end = info.scheduled_time + info.schedule_to_close_timeout
        lefts.append((end - _now()).total_seconds())
    return min(lefts) if lefts else None


def _final(err: BaseException, info: activity.Info) -> bool:
    """Whether Temporal will not retry after ``err`` (the invocation's last attempt)."""
    policy = info.retry_policy
    return (
        (isinstance(err, ApplicationError) and err.non_retryable)
        or (
            policy is not None
            and policy.maximum_attempts > 0
            and info.attempt >= policy.maximum_attempts
        )
        or (
            policy is not None
            and isinstance(err, ApplicationError)
            and err.type in (policy.non_retryable_error_types or ())
        )
    )


class TempoflowActivities:
    """Activities bound to the worker's dependencies (registry, database)."""

    def __init__(
        self,
        registry: ActionRegistry,
        sessions: async_sessionmaker[AsyncSession],
        keyring: Keyring | None = None,
        writer: GroupWriter | None = None,
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.secrets = SecretResolver(sessions, keyring or Settings().keyring)
        # Projection writes of concurrent activities share transactions (group commit).
        self.writer = writer or GroupWriter(sessions.kw["bind"])
        # Records an attempt could not write (database unreachable): attempt outcomes, and
        # everything a side-effect-free action's attempt carried; the next write of this
        # worker carries them.
        self._backlog: list[ProjectionBatch] = []

    async def _transact(
        self,
        work: Callable[[AsyncSession, bool], Awaitable[T]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (per transaction)
    ) -> T:
        """``work(session, degraded)`` in one transaction; after a permanent data error
        once more, degraded (unstorable values replaced by markers)."""
        try:
            async with asyncio.timeout(timeout), self.sessions.begin() as session:
                return await work(session, False)
        except Exception as err:
            if not is_permanent(err):
                raise
            log.warning("projection write degraded after a data error: %s", err)
        async with asyncio.timeout(timeout), self.sessions.begin() as session:
            return await work(session, True)

    def _take_backlog(self, batch: ProjectionBatch) -> list[ProjectionBatch]:
        """The backlog (taken: restore it if the write fails), then ``batch``."""
        taken, self._backlog = self._backlog, []
        return [*taken, batch]

    def _restore_backlog(self, batches: list[ProjectionBatch]) -> None:
        self._keep(batches[:-1])

    def _keep(self, batches: list[ProjectionBatch]) -> None:
        self._backlog = [*batches, *self._backlog][-BACKLOG_LIMIT:]

    async def _write(self, batch: ProjectionBatch) -> None:
        batches = self._take_backlog(batch)
        try:
            await self.writer.write(batches)
        except BaseException:
            self._restore_backlog(batches)
            raise

    @activity.defn(name=PROJECT_ACTIVITY)
    async def project(self, raw: RawValue) -> None:
        """Write a batch of projection records (idempotent). Transient database errors
        raise (the workflow's local activity retries without limit); data PostgreSQL
        cannot hold is written degraded, never retried."""
        batch = _decode(raw, ProjectionBatch)
        try:
            await self._write(batch)
        except BaseException:
            metrics.observe_projection(batch, ok=False)
            raise
        metrics.observe_projection(batch, ok=True)

    @activity.defn(name=REGISTER_WAIT_ACTIVITY)
    async def register_wait(self, raw: RawValue) -> list[EventDelivery]:
        """Index a wait under the routing lock; the buffered events it may take.

        Ends rather than retrying forever when retrying cannot help: pending records
        PostgreSQL refuses are written degraded; a wait it still refuses fails the step
        (``WaitRegistrationFailed``, catchable); an event that cannot be encoded for the
        run is left out with a ``FAILED`` delivery.
        """
        request = _decode(raw, RegisterWait)

        async def work(session: AsyncSession, degraded: bool) -> list[EventDelivery]:
            pending = request.pending
            if degraded:
                # The wait's locks first (as routing takes them), then the batch, degraded.
                wait = request.wait
                keys = ((wait.tenant, name, wait.correlation_key) for name in wait.event_names)
                await routing.lock(session, keys)
                await write_batch(session, pending, degraded=True)
                pending = ProjectionBatch()
            events = await routing.register_wait(
                session,
                request.wait,
                request.buffered_limit,
                pending,
                max_bytes=request.buffered_bytes,
                after_seq=request.after_seq,
            )
            return await sendable(session, request.wait, events)

        try:
            return await self._transact(work)
        except Exception as err:
            if not is_permanent(err):
                raise
            raise ApplicationError(
                f"the wait cannot be registered: {getattr(err, 'orig', None) or err}",
                type=ErrorType.WAIT_REGISTRATION_FAILED,
                non_retryable=True,
            ) from None

    @activity.defn(name=RESOLVE_DEFINITION_ACTIVITY)
    async def resolve_definition(self, request: DefinitionRequest) -> DefinitionRef:
        """The published version a child run pins (latest when no version is given)."""
        async with self.sessions() as session:
            row = await definitions.published_version(
                session, request.tenant, request.key, request.version
            )
        if row is None:
            which = f"version {request.version}" if request.version else "a published version"
            raise ApplicationError(
                f"definition {request.key!r} has no {which}",
                type=ErrorType.DEFINITION_NOT_FOUND,
                non_retryable=True,
            )
        return DefinitionRef(
            key=row.key,
            version=row.version,
            body=row.body,
            action_defaults=row.action_defaults or {},
        )

    @activity.defn(dynamic=True)
    async def invoke_action(self, args: Sequence[RawValue]) -> ActionOutcome:
        """Run the action named by the activity type.

        Bookkeeping never decides the outcome. Before the handler of an action with side
        effects, the invocation is claimed (with the buffered records and the step as
        RUNNING) for a lease ending with the attempt; a recorded success is returned
        instead of repeating the side effect. If the database is unreachable, or another
        run's attempt holds a live claim on the key, the attempt waits briefly, then
        gives itself back (``BookkeepingUnavailable``) without running the handler: the
        workflow waits and schedules the action again, and that never counts as an
        attempt. After the handler, the outcome is recorded; if that fails, a success
        still returns (the workflow's next projection write records it) and a failure
        still raises (this worker's next write records it).

        An action without side effects (``side_effects=False``: repeating it is harmless)
        claims nothing: its handler runs first, then the buffered records, the step and
        the attempt's outcome are written together, once; if the database stays
        unreachable, the attempt gives itself back the same way (and runs again later).
        Writes of concurrent attempts share transactions (``GroupWriter``).
        """
        clock = time.monotonic()
        info = activity.info()
        inv = activity.payload_converter().from_payload(args[0].payload, ActionInvocation)
        spec = self.registry.get(inv.action)
        attempt = inv.attempt_base + info.attempt
        lines = runlogs.collect(inv, attempt)  # written with the attempt's outcome
        started = _now()
        step = StepRecord(
            run_id=inv.run_id,
            tenant=inv.tenant,
            seq=inv.seq,
            path=inv.step_path,
            loop=inv.loop,
            step_id=inv.step_id,
            type=type_of(ActionCall),
            status=StepStatus.RUNNING,
            attempt=attempt,
            started_at=started,
            input=projected_input(inv),
        )
        outcome = InvocationRecord(
            tenant=inv.tenant,
            action=inv.action,
            action_version=spec.version if spec else 0,
            idempotency_key=inv.idempotency_key,
            run_id=inv.run_id,
            step_path=inv.step_path,
            loop=inv.loop,
            attempt=attempt,
            status="SUCCEEDED",
            invocation_status="SUCCEEDED",
            started_at=started,
        )
        # Side-effect-free: what the claim would have written goes with the outcome.
        carried = None if spec is None or spec.side_effects else inv.pending
        try:
            if carried is None:
                claim = await self._claim(inv, outcome, step, info, clock)
                if claim.status == "SUCCEEDED":
                    return ActionOutcome(
                        output=restore_json(claim.output),
                        attempt=attempt,
                        deduplicated=True,
                        action_version=outcome.action_version,
                    )
            try:
                output = await self.secrets.run(
                    inv.tenant,
                    inv.input,
                    inv.secrets,
                    lambda data: self._run(inv, spec, attempt, data),
                )
            except asyncio.CancelledError:
                closed = outcome.model_copy(
                    update={
                        "status": "CANCELED",
                        "invocation_status": "CANCELED",
                        "finished_at": _now(),
                    }
                )
                await asyncio.shield(
                    self._record(
                        closed,
                        info,
                        clock,
                        keep=True,
                        step=step if carried is not None else None,
                        carried=carried,
                        logs=lines,
                    )
                )
                raise
            except Exception as err:
                error = _error_dict(err)
                failed = outcome.model_copy(
                    update={
                        "status": "FAILED",
                        "invocation_status": "FAILED" if _final(err, info) else "RETRYING",
                        "error": error,
                        "finished_at": _now(),
                    }
                )
                # The step shows the latest error while it retries.
                last = step.model_copy(update={"error": error, "finished_at": _now()})
                if carried is None:
                    await self._record(failed, info, clock, keep=True, step=last, logs=lines)
                else:
                    await self._settle(carried, last, failed, info, clock, lines)
                if isinstance(err, ApplicationError):
                    # The attempt number travels with the error (catch blocks show it).
                    raise ApplicationError(
                        err.message,
                        ActionFailure(
                            attempt=attempt,
                            details=error["details"],
                            action_version=outcome.action_version,
                        ),
                        type=err.type,
                        non_retryable=err.non_retryable,
                        next_retry_delay=_capped_delay(err.next_retry_delay, info.retry_policy),
                    ) from err
                raise
            done = outcome.model_copy(update={"output": output, "finished_at": _now()})
            if carried is not None:
                await self._settle(carried, step, done, info, clock, lines)
                return ActionOutcome(
                    output=output, attempt=attempt, action_version=outcome.action_version
                )
        except BookkeepingUnavailableError as err:
            raise ApplicationError(
                f"the database is unreachable: {err.__cause__!r}",
                BookkeepingInterrupted(attempt=attempt, reason="database"),
                type=ErrorType.BOOKKEEPING_UNAVAILABLE,
                non_retryable=True,
            ) from None
        except ClaimHeldError as err:
            raise ApplicationError(
                f"idempotency key {inv.idempotency_key!r} is claimed by another run's "
                f"attempt (lease until {err.claim.held_until})",
                BookkeepingInterrupted(attempt=attempt, reason="claimed"),
                type=ErrorType.BOOKKEEPING_UNAVAILABLE,
                non_retryable=True,
            ) from None
        version = outcome.action_version
        if await self._record(done, info, clock, keep=False, logs=lines):
            return ActionOutcome(output=output, attempt=attempt, action_version=version)
        # The step's SUCCEEDED record travels back with the result, and so does the
        # invocation's when it could not be written here.
        return ActionOutcome(
            output=output,
            attempt=attempt,
            action_version=version,
            unrecorded=done.model_copy(update={"output": None}),
        )

    async def _claim(
        self,
        inv: ActionInvocation,
        outcome: InvocationRecord,
        step: StepRecord,
        info: activity.Info,
        clock: float,
    ) -> invocations.Claim:
        """Write the buffered records and the RUNNING step, claim the invocation and
        record the attempt; within the attempt's waiting budget, retry transient errors
        and wait for a claim another run holds to end."""
        ids = invocations.InvocationRef(
            outcome.tenant, outcome.action, outcome.action_version, outcome.idempotency_key
        )
        pending = inv.pending.model_copy(update={"steps": [*inv.pending.steps, step]})

        def request() -> invocations.ClaimRequest:
            left = _time_left(info, clock)
            lease = CLAIM_LEASE_DEFAULT if left is None else max(left, 0.0) + CLAIM_LEASE_GRACE
            return invocations.ClaimRequest(
                ref=ids,
                run_id=inv.run_id,
                step_path=inv.step_path,
                loop=inv.loop,
                attempt=outcome.attempt,
                started_at=outcome.started_at,
                lease=timedelta(seconds=lease),
            )

        budget = _wait_budget(info, clock)
        waited = time.monotonic()
        delay = 0.1
        while True:
            batches = self._take_backlog(pending)
            left = budget - (time.monotonic() - waited)
            try:
                async with asyncio.timeout(max(left, CLAIM_MIN_TIMEOUT)):
                    claim = await self.writer.claim(batches, request())
            except Exception as err:
                self._restore_backlog(batches)
                left = budget - (time.monotonic() - waited)
                if left <= 0:
                    raise BookkeepingUnavailableError() from err
                # Unexpected errors (e.g. a migration not applied) retry too, louder.
                level = logging.WARNING if is_transient(err) else logging.ERROR
                log.log(level, "claiming invocation %s: %r (retrying)", inv.idempotency_key, err)
            else:
                if claim.status != "HELD":
                    return claim
                # Another run's attempt holds the key: wait for its outcome (or for its
                # lease to end) without running the handler.
                pending = ProjectionBatch()  # written already
                left = budget - (time.monotonic() - waited)
                if left <= 0:
                    raise ClaimHeldError(claim)
            _beat(info)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    async def _settle(
        self,
        carried: ProjectionBatch,
        step: StepRecord,
        outcome: InvocationRecord,
        info: activity.Info,
        clock: float,
        logs: runlogs.AttemptLog | None = None,
    ) -> None:
        """Write a side-effect-free attempt's records: the buffered ones, the step and the
        outcome; within the attempt's waiting budget, retry transient errors, then give
        the attempt back (``BookkeepingUnavailableError``)."""
        batch = carried.model_copy(
            update={
                "steps": [*carried.steps, step],
                "invocations": [*carried.invocations, outcome],
                "logs": [*carried.logs, *(logs.records() if logs else [])],
            }
        )
        budget = _wait_budget(info, clock)
        waited = time.monotonic()
        delay = 0.1
        while True:
            batches = self._take_backlog(batch)
            left = budget - (time.monotonic() - waited)
            try:
                async with asyncio.timeout(max(left, CLAIM_MIN_TIMEOUT)):
                    await self.writer.write(batches)
                return
            except Exception as err:
                self._restore_backlog(batches)
                left = budget - (time.monotonic() - waited)
                if left <= 0:
                    raise BookkeepingUnavailableError() from err
                level = logging.WARNING if is_transient(err) else logging.ERROR
                log.log(
                    level,
                    "recording attempt %s of %s: %r (retrying)",
                    outcome.attempt,
                    outcome.action,
                    err,
                )
            _beat(info)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    async def _record(
        self,
        outcome: InvocationRecord,
        info: activity.Info,
        clock: float,
        *,
        keep: bool,
        step: StepRecord | None = None,
        carried: ProjectionBatch | None = None,
        logs: runlogs.AttemptLog | None = None,
    ) -> bool:
        """Record an attempt's outcome (one try, bounded by the attempt's time left);
        when that fails, ``keep`` it for this worker's next write (with the ``carried``
        records of a side-effect-free attempt, which nothing else writes). Never raises."""
        left = _time_left(info, clock)
        timeout = RECORD_TIMEOUT if left is None else min(RECORD_TIMEOUT, left - 0.5)
        batch = ProjectionBatch(
            invocations=[outcome],
            steps=[step] if step else [],
            logs=logs.records() if logs else [],
        )
        if carried is not None:
            batch = carried.model_copy(
                update={
                    "steps": [*carried.steps, *batch.steps],
                    "invocations": [*carried.invocations, outcome],
                    "logs": [*carried.logs, *batch.logs],
                }
            )
        try:
            if timeout <= 0:
                raise TimeoutError("no time left in the attempt")
            async with asyncio.timeout(timeout):
                await self.writer.write([batch])
            return True
        except Exception as err:
            log.warning(
                "recording attempt %s of %s failed: %r", outcome.attempt, outcome.action, err
            )
            if keep:
                kept = batch if carried is not None else ProjectionBatch(invocations=[outcome])
                self._backlog = [*self._backlog, kept][-BACKLOG_LIMIT:]
            return False

    async def _run(
        self, inv: ActionInvocation, spec: ActionSpec[Any, Any] | None, attempt: int, input: Any
    ) -> Any:
        """Validate ``input`` (secret references resolved) and run the handler."""
        if spec is None:
            raise ApplicationError(
                f"action {inv.action!r} is not registered on this worker",
                type=ErrorType.ACTION_NOT_FOUND,
                non_retryable=True,
            )
        try:
            data = spec.input_model.model_validate(input)
        except ValidationError as err:
            raise ApplicationError(
                f"invalid input for {inv.action}: {err.error_count()} error(s)",
                err.errors(include_url=False, include_context=False),
                type=ErrorType.ACTION_INPUT_ERROR,
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
            heartbeat=_no_heartbeat if activity.info().is_local else masked_heartbeat,
        )
        try:
            with metrics.observe_action(inv.action):
                result = await spec.handler(data, ctx)
        except ActionError as err:
            raise ApplicationError(
                err.message,
                err.details,
                type=err.type,
                non_retryable=not err.retryable,
                next_retry_delay=err.next_retry_delay,
            ) from err
        try:
            return spec.output_model.model_validate(result).model_dump(mode="json")
        except ValidationError as err:
            raise ApplicationError(
                f"action {inv.action} returned invalid output: {err.error_count()} error(s)",
                type=ErrorType.ACTION_OUTPUT_ERROR,
                non_retryable=True,
            ) from None
