"""Notification policies in the workflow: render, then send in the background.

A policy (``notify`` of a step or of the definition) whose ``on`` happens is rendered
here, deterministically, in a scope of the run that also holds ``notification``
(``event``, ``step``, ``error``, ``output``); the message goes to the notification
activity (``tempoflow.notify``) as a task of its own, so the run does not wait for the
delivery. Pending deliveries are awaited before the execution closes or continues as new.
An activity that still fails after its retries is only logged: the activity has recorded
it ``FAILED`` in the delivery log, and a notification never fails or changes the run.

Runs whose definition has no ``notify`` schedule nothing here (no activity, no history
event), so they replay as before without a patch.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from tempoflow.definition.model import Notification
from tempoflow.definition.model import RetryPolicy as PolicyModel
from tempoflow.error_types import ErrorType
from tempoflow.secrets import iter_references
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import (
    NOTIFY_ACTIVITY,
    RESEND_WORKFLOW,
    NotificationReceipt,
    NotificationRequest,
)

_NS = uuid.UUID("5d1f0c8e-2b7a-4f43-9a65-0c1e7f3b9d24")
DEFAULT_RETRY = PolicyModel(
    maxAttempts=5,
    initialInterval=timedelta(seconds=1),
    backoffCoefficient=2.0,
    maxInterval=timedelta(minutes=1),
)
"""Delivery attempts of a notification that sets no ``retry``."""
ATTEMPT_TIMEOUT = timedelta(minutes=2)
BOOKKEEPING_BACKOFF = timedelta(seconds=1)
BOOKKEEPING_MAX_BACKOFF = timedelta(minutes=2)


def notification_id(key: str) -> str:
    """The delivery log id of the notification with idempotency key ``key``."""
    return str(uuid.uuid5(_NS, key))


def notification_key(
    ctx: RunContext, policy: str, path: str | None, event: str, channel: str
) -> str:
    """Stable across retries, worker crashes, continue-as-new and resets: run, policy,
    step (and loop iteration), event and channel."""
    raw = "|".join(
        (ctx.inp.tenant, ctx.workflow_id, policy, path or "", ctx.loop or "", event, channel)
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def retry_policy(policy: PolicyModel | None) -> RetryPolicy:
    p = policy or DEFAULT_RETRY
    return RetryPolicy(
        maximum_attempts=p.maxAttempts,
        initial_interval=p.initialInterval,
        backoff_coefficient=p.backoffCoefficient,
        maximum_interval=p.maxInterval,
        non_retryable_error_types=p.nonRetryableErrors or None,
    )


async def deliver(request: NotificationRequest, retry: PolicyModel | None) -> bool:
    """Run the notification activity; ``False`` when it failed for good (it recorded
    that; it is only logged here). An attempt given back because the delivery log was
    unreachable (before anything was sent) is no attempt: wait durably and schedule the
    notification again."""
    delay = BOOKKEEPING_BACKOFF
    while True:
        try:
            await workflow.execute_activity(
                NOTIFY_ACTIVITY,
                request,
                result_type=NotificationReceipt,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=retry_policy(retry),
                summary=f"notify {request.event} via {request.channel}",
            )
            return True
        except ActivityError as err:
            cause = err.cause
            if (
                isinstance(cause, ApplicationError)
                and cause.type == ErrorType.BOOKKEEPING_UNAVAILABLE
            ):
                await workflow.sleep(delay)
                delay = min(delay * 2, BOOKKEEPING_MAX_BACKOFF)
                continue
            workflow.logger.warning(
                "notification %s (%s) was not delivered: %s", request.id, request.policy, cause
            )
            return False


class Notifier:
    """The run's notification policies and its deliveries in flight."""

    def __init__(self, run_policies: list[Notification]) -> None:
        self.run_policies = run_policies
        self.pending: list[asyncio.Task[None]] = []

    def fire(
        self,
        ctx: RunContext,
        event: str,
        *,
        step: Any = None,
        path: str | None = None,
        error: dict[str, Any] | None = None,
        output: Any = None,
    ) -> None:
        """Send every policy of ``step`` (or of the run, ``step`` ``None``) on ``event``;
        ``waiting`` also sends the run's ``waiting`` policies for the step."""
        matched: list[tuple[str, Notification]] = []
        if step is not None:
            matched += [
                (f"{path}/notify/{i}", n) for i, n in enumerate(step.notify) if n.on == event
            ]
        if step is None or event == "waiting":
            matched += [
                (f"/notify/{i}", n) for i, n in enumerate(self.run_policies) if n.on == event
            ]
        if not matched:
            return
        info = {
            "event": event,
            "step": None
            if step is None
            else {
                "id": step.id,
                "name": step.name,
                "type": step.type,
                "path": path,
                "loop": ctx.loop,
            },
            "error": error,
            "output": output,
        }
        scope = ctx.child(names={"notification": info}, isolated=False)
        for pointer, policy in matched:
            request = self._render(scope, pointer, policy, event, path, step)
            self.pending.append(asyncio.create_task(self._send(request, policy)))

    def _render(
        self,
        scope: RunContext,
        pointer: str,
        policy: Notification,
        event: str,
        path: str | None,
        step: Any,
    ) -> NotificationRequest:
        key = notification_key(scope, pointer, path, event, policy.channel)
        request = NotificationRequest(
            id=notification_id(key),
            key=key,
            tenant=scope.inp.tenant,
            run_id=scope.inp.run_id,
            workflow_id=scope.workflow_id,
            definition_key=scope.inp.definition_key,
            policy=pointer,
            step_path=path,
            step_id=None if step is None else step.id,
            loop=scope.loop,
            event=event,
            channel=policy.channel,
            secrets=[p for p, _ in iter_references(policy.template)],
        )
        try:
            rendered = request.model_copy(
                update={
                    "to": scope.resolve(policy.to, f"{pointer}/to"),
                    "template": scope.resolve(policy.template, f"{pointer}/template"),
                }
            )
            # Over the payload limit, Temporal would refuse the command (and the run).
            scope.check_size(rendered, "the rendered notification")
            return rendered
        except StepFailure as failure:
            # Recorded FAILED in the delivery log (nothing is sent); the run goes on.
            return request.model_copy(update={"render_error": failure.to_dict()})

    async def _send(self, request: NotificationRequest, policy: Notification) -> None:
        await deliver(request, policy.retry)

    async def drain(self) -> None:
        """Wait for every delivery in flight (before the execution closes)."""
        while self.pending:
            tasks, self.pending = self.pending, []
            await asyncio.gather(*tasks)


@workflow.defn(name=RESEND_WORKFLOW)
class ResendWorkflow:
    """Sends a delivery log entry again (``POST /v1/notifications/{id}/resend``): the
    same message through the same activity, under a key of its own."""

    @workflow.run
    async def run(self, request: NotificationRequest) -> bool:
        """Whether it was delivered (the delivery log has the details)."""
        return await deliver(request, None)
