"""``event.wait``: index the wait under the routing lock, take a buffered or delivered
event of the correlation key (filter permitting), or time out.

The closed wait is projected with the run's next write (its next action, wait or end),
not at once: that saves a local activity per event, and a router that still sees the
wait open only signals the run an event it keeps for a later wait or ignores. Verdicts
that leave the run waiting (an event filtered out, or refused by a full inbox) are
written at once, batched: the routing record shows them while the run still waits.

A long wait continues as new when Temporal suggests it or the execution has received
``events.MAX_SIGNALS`` signals (Temporal caps signals per execution): the wait resumes
in the new execution as the same wait (same sequence and start), the inbox carried over.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from expression import truthy
from tempoflow.correlation import CorrelationError, normalize_key
from tempoflow.definition import EventWait
from tempoflow.error_types import ErrorType
from tempoflow.records import (
    DeliveryRecord,
    DeliveryStatus,
    RunStatus,
    WaitRecord,
    WaitStatus,
)
from temporal_workflows import events as inbox
from temporal_workflows.context import RunContext
from temporal_workflows.failures import ContinueAsNew, StepFailure, position_key
from temporal_workflows.models import EventDelivery
from temporal_workflows.nodes.base import Runtime, StepOutcome


def _key(step: EventWait, path: str, ctx: RunContext) -> str:
    where = f"{path}/correlationKey"
    try:
        key = normalize_key(ctx.evaluate(step.correlationKey, where))
    except CorrelationError as err:
        raise StepFailure(ErrorType.CORRELATION_ERROR, str(err), None, {"path": where}) from None
    if key is None:
        raise StepFailure(
            ErrorType.CORRELATION_ERROR,
            "the correlation key evaluated to nothing",
            None,
            {"path": where},
        )
    return key


PROMPT_VERDICTS = "tempoflow.event-wait.prompt-verdicts"
"""Patch: verdicts flushed while waiting, continue-as-new inside long waits."""


def _must_continue(ctx: RunContext, rt: Runtime) -> bool:
    # The signal budget first: ``should_continue`` may call ``workflow.patched``.
    return rt.blocked == 0 and (rt.mailbox.signals >= inbox.MAX_SIGNALS or rt.should_continue(ctx))


async def _read_page(
    rt: Runtime, wait: WaitRecord, names: list[str], key: str, after: int
) -> int | None:
    """Register ``wait`` (again) and put the buffered events after inbox sequence
    ``after`` into the inbox; returns where the next page starts when this one may have
    been cut by the inbox budget, else ``None``."""
    limit, size = rt.mailbox.budget(names, key)
    try:
        page = await rt.register_wait(wait, after)
    except ActivityError as err:  # refused for good (e.g. data PostgreSQL rejects)
        cause = err.cause
        raise StepFailure(
            ErrorType.WAIT_REGISTRATION_FAILED,
            cause.message if isinstance(cause, ApplicationError) else str(err),
            None,
            {"correlationKey": key},
        ) from None
    for event in page:
        rt.mailbox.deliver(event)
    held = sum(len(json.dumps(e.payload, separators=(",", ":"))) for e in page)
    if page and (len(page) >= limit or 2 * held >= size):
        return max(e.seq for e in page)
    return None


async def execute(
    step: EventWait, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = _key(step, path, ctx)
    names = step.names()
    since = workflow.now()
    prompt = workflow.patched(PROMPT_VERDICTS)
    resume_key = position_key(path, ctx.loop) + "#wait"
    resumed = rt.resume(resume_key) if prompt else None
    if resumed is not None:  # the same wait, continued as new
        seq, since = resumed["seq"], datetime.fromisoformat(resumed["since"])
    wait = WaitRecord(
        run_id=ctx.inp.run_id,
        seq=seq,
        tenant=ctx.inp.tenant,
        workflow_id=ctx.workflow_id,
        step_path=path,
        loop=ctx.loop,
        event_names=names,
        correlation_key=key,
        since=since,
        expires_at=since + step.timeout if step.timeout is not None else None,
    )

    def verdict(event: EventDelivery, status: DeliveryStatus, reason: str | None = None) -> None:
        ctx.shared.deliveries.append(
            DeliveryRecord(
                tenant=ctx.inp.tenant,
                event_id=event.id,
                run_id=ctx.inp.run_id,
                workflow_id=ctx.workflow_id,
                status=status,
                step_path=path,
                reason=reason,
            )
        )

    wanted = rt.mailbox.want(names, key)
    matched: EventDelivery | None = None
    skipped: list[EventDelivery] = []  # filtered out here; back to the inbox afterwards
    notified = resumed is not None  # the wait began in an earlier execution
    try:
        more = await _read_page(rt, wait, names, key, 0)
        while matched is None:
            while (event := rt.mailbox.pop(names, key)) is not None:
                if step.filter is not None:
                    scope = ctx.child(names={"event": event.public()}, isolated=False)
                    try:
                        keep = truthy(scope.evaluate(step.filter, f"{path}/filter"))
                    except StepFailure:
                        skipped.append(event)
                        raise
                    if not keep:
                        verdict(event, DeliveryStatus.FILTERED, "the wait's filter was false")
                        skipped.append(event)
                        continue
                matched = event
                break
            if matched is not None:
                break
            remaining = None
            if wait.expires_at is not None:
                remaining = (wait.expires_at - workflow.now()).total_seconds()
                if remaining <= 0:
                    break
            if prompt and more is not None:  # all filtered out: the next buffered page
                more = await _read_page(rt, wait, names, key, more)
                continue
            if prompt and ctx.shared.deliveries:
                await ctx.flush(RunStatus.WAITING)  # verdicts visible while waiting
                continue
            if prompt and _must_continue(ctx, rt):
                can = ContinueAsNew()
                can.positions[resume_key] = {"seq": seq, "since": since.isoformat()}
                raise can
            if not notified:  # nothing matched at once: the step waits from here
                notified = True
                ctx.notify("waiting", step, path)
            try:
                await workflow.wait_condition(
                    lambda: (
                        rt.mailbox.has(names, key)
                        or (prompt and (bool(ctx.shared.deliveries) or _must_continue(ctx, rt)))
                    ),
                    timeout=remaining,
                )
            except TimeoutError:
                break
    except asyncio.CancelledError:
        ctx.shared.waits.append(
            wait.model_copy(update={"status": WaitStatus.CANCELED, "closed_at": workflow.now()})
        )
        raise
    finally:
        rt.mailbox.unwant(wanted)
        for event in skipped:  # a later wait (another filter) may take them
            rt.mailbox.deliver(event)  # (DEFERRED when the inbox is full)
    closed = {"closed_at": workflow.now()}
    if matched is not None:
        rt.mailbox.applied(matched.id)
        verdict(matched, DeliveryStatus.APPLIED)
        ctx.shared.waits.append(
            wait.model_copy(update={"status": WaitStatus.MATCHED, "event_id": matched.id, **closed})
        )
        event_value = matched.public()
        if step.output:
            ctx.set_var(step.output, event_value)
        return StepOutcome(input={"correlationKey": key}, output=event_value)
    ctx.shared.waits.append(wait.model_copy(update={"status": WaitStatus.TIMED_OUT, **closed}))
    if step.onTimeout == "fail":
        raise StepFailure(
            ErrorType.TIMEOUT_ERROR,
            f"no {' or '.join(names)} event with correlation key {key!r} within {step.timeout}",
            None,
            {"correlationKey": key, "events": names},
        )
    if step.output:
        ctx.set_var(step.output, None)
    return StepOutcome(input={"correlationKey": key}, output={"timedOut": True})
