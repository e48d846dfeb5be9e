"""The notification activity (``tempoflow.notify``): one delivery, at most once per key.

Each attempt first claims the notification's row in the delivery log (by tenant and
idempotency key, in the database's clock): a row already ``SENT`` returns its receipt
without sending (a retry, a replay after a reset, a worker that died after sending and
recording), and a row another attempt holds (its lease not over) is not sent now. Then
the secret references of the template are resolved (``SecretResolver``, values masked
in errors and logs), the channel sends, and the outcome is recorded: ``SENT`` with the
provider's message id, or ``RETRYING``/``FAILED`` with the error (``FAILED`` once the
retry policy is exhausted or the error is permanent). The workflow never fails because
of it. The window that remains: a worker dying between the provider's acceptance and the
recording sends once more after the lease; the idempotency key travels as the
Message-ID / ``webhook-id`` so the receiver can tell.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.actions import _error_dict, _final, _time_left
from activities.channels import ChannelMessage, ChannelRegistry, ChannelSpec
from activities.registry import ActionContext, ActionError
from activities.secrets import SecretResolver, masked_heartbeat
from projections import notifications as log
from projections.db import is_transient
from tempoflow.error_types import ErrorType
from temporal_workflows.models import NOTIFY_ACTIVITY, NotificationReceipt, NotificationRequest

LEASE_GRACE = 5.0
IN_FLIGHT_DELAY = timedelta(seconds=5)


def row_of(request: NotificationRequest) -> dict[str, Any]:
    """The delivery log columns a request gives."""
    return {
        "id": request.id,
        "tenant": request.tenant,
        "key": request.key,
        "run_id": request.run_id,
        "definition_key": request.definition_key,
        "policy": request.policy,
        "step_path": request.step_path,
        "loop": request.loop,
        "event": request.event,
        "channel": request.channel,
        "recipient": request.to,
        "request": request.model_dump(mode="json"),
        "resend_of": request.resend_of,
    }


class NotificationActivities:
    """``tempoflow.notify`` bound to the worker's database, channels and secrets."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: ChannelRegistry,
        secrets: SecretResolver,
    ) -> None:
        self.sessions = sessions
        self.channels = channels
        self.secrets = secrets

    async def _in_transaction(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with self.sessions.begin() as session:
            return await work(session)

    async def _record(
        self, request: NotificationRequest, status: str, attempt: int, **fields: Any
    ) -> None:
        try:
            await self._in_transaction(
                lambda s: log.record(
                    s, request.tenant, request.key, status=status, attempt=attempt, **fields
                )
            )
        except Exception as err:  # the outcome stands; the log shows the last one written
            activity.logger.warning("recording notification %s failed: %r", request.id, err)

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def notify(self, request: NotificationRequest) -> NotificationReceipt:
        """Send one notification (see the module docstring)."""
        info = activity.info()
        started = time.monotonic()
        attempt = info.attempt
        left = _time_left(info, started)
        lease = timedelta(seconds=(left if left is not None else 600.0) + LEASE_GRACE)
        try:
            claim = await self._in_transaction(
                lambda s: log.claim(s, row_of(request), attempt=attempt, lease=lease)
            )
        except Exception as err:
            if not is_transient(err):
                raise
            # Not an attempt: the workflow waits on a timer and schedules it again.
            raise ApplicationError(
                f"the database is unreachable: {err!r}",
                type=ErrorType.BOOKKEEPING_UNAVAILABLE,
                non_retryable=True,
            ) from None
        if claim.status == log.SENT:
            return NotificationReceipt(
                status="DEDUPLICATED",
                attempts=attempt,
                provider_message_id=claim.provider_message_id,
            )
        if claim.status == "HELD":
            raise ApplicationError(
                f"notification {request.id} is being sent by another attempt",
                type=ErrorType.NOTIFICATION_IN_FLIGHT,
                next_retry_delay=IN_FLIGHT_DELAY,
            )
        spec = self.channels.get(request.channel)
        try:
            if request.render_error is not None:
                raise ApplicationError(
                    f"the notification could not be rendered: {request.render_error['message']}",
                    request.render_error,
                    type=ErrorType.NOTIFICATION_RENDER_ERROR,
                    non_retryable=True,
                )
            if spec is None:
                raise ApplicationError(
                    f"channel {request.channel!r} is not registered on this worker",
                    type=ErrorType.CHANNEL_NOT_FOUND,
                    non_retryable=True,
                )
            message_id = await self.secrets.run(
                request.tenant,
                request.template,
                request.secrets,
                lambda template: self._send(spec, request, template, attempt),
            )
        except Exception as err:
            status = log.FAILED if _final(err, info) else log.RETRYING
            await self._record(request, status, attempt, error=_error_dict(err))
            raise
        await self._record(request, log.SENT, attempt, provider_message_id=message_id)
        return NotificationReceipt(status="SENT", attempts=attempt, provider_message_id=message_id)

    async def _send(
        self, spec: ChannelSpec, request: NotificationRequest, template: Any, attempt: int
    ) -> str | None:
        try:
            data = spec.template_model.model_validate(template)
        except ValidationError as err:
            raise ApplicationError(
                f"invalid {spec.name} template: {err.error_count()} error(s)",
                err.errors(include_url=False, include_context=False, include_input=False),
                type=ErrorType.NOTIFICATION_INVALID,
                non_retryable=True,
            ) from None
        ctx = ActionContext(
            tenant=request.tenant,
            run_id=request.run_id,
            workflow_id=request.workflow_id,
            step_path=request.step_path or "",
            step_id=request.step_id or "",
            attempt=attempt,
            idempotency_key=request.key,
            logger=activity.logger,
            heartbeat=masked_heartbeat,
        )
        try:
            return await spec.handler(
                ChannelMessage(to=request.to, template=data, key=request.key), ctx
            )
        except ActionError as err:
            raise ApplicationError(
                err.message,
                err.details,
                type=err.type,
                non_retryable=not err.retryable,
                next_retry_delay=err.next_retry_delay,
            ) from None
        except ValidationError as err:  # the action's input model refused the message
            raise ApplicationError(
                f"invalid {spec.name} notification: {err.error_count()} error(s)",
                err.errors(include_url=False, include_context=False, include_input=False),
                type=ErrorType.NOTIFICATION_INVALID,
                non_retryable=True,
            ) from None
