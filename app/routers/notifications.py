"""Notification delivery log: a run's deliveries, and sending one again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from temporalio.service import RPCError

from app.deps import Operator, SessionDep, SettingsDep, TemporalClientDep
from app.routers.runs import RunIdPath, ensure_run
from app.schemas import NotificationPublic, NotificationsPublic, ResendPublic
from projections import audit
from projections import notifications as log
from tempoflow.errors import Conflict, NotFound
from temporal_workflows import notify
from temporal_workflows.models import RESEND_WORKFLOW, NotificationRequest

router = APIRouter(prefix="/v1", tags=["notifications"])
NotificationIdPath = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("/runs/{run_id}/notifications", response_model=NotificationsPublic)
async def read_run_notifications(
    run_id: RunIdPath, principal: Operator, session: SessionDep, client: TemporalClientDep
) -> NotificationsPublic:
    """The run's notifications, resends included, oldest first."""
    rows = await log.list_for_run(session, principal.tenant, run_id)
    if not rows:
        await ensure_run(session, client, principal.tenant, run_id)
    return NotificationsPublic(items=[NotificationPublic.model_validate(r) for r in rows])


@router.post(
    "/notifications/{notification_id}/resend", response_model=ResendPublic, status_code=202
)
async def resend_notification(
    notification_id: NotificationIdPath,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> ResendPublic:
    """Send the notification's message again (a new delivery log entry, a key of its
    own), through the worker's notification activity on a small Temporal workflow.
    409 while the notification is still being sent or when it never rendered."""
    row = await log.get(session, principal.tenant, notification_id)
    if row is None:
        raise NotFound(
            f"notification {notification_id!r} does not exist", code="notification_not_found"
        )
    if row.status not in (log.SENT, log.FAILED):
        raise Conflict(
            f"the notification is still being sent ({row.status})",
            code="notification_in_flight",
            hint="wait until it is SENT or FAILED",
            extra={"notificationStatus": row.status},
        )
    original = NotificationRequest.model_validate(row.request)
    if original.render_error is not None:
        raise Conflict(
            "the notification was never rendered: there is no message to send again",
            code="notification_unrenderable",
            hint="see its error; fix the definition's template",
        )
    count = await log.resends(session, principal.tenant, notification_id)
    key = f"{original.key}:resend:{count + 1}"
    request = original.model_copy(
        update={"key": key, "id": notify.notification_id(key), "resend_of": notification_id}
    )
    details = {"resend": request.id, "runId": row.run_id, "channel": row.channel}
    await session.rollback()  # release the connection while Temporal is called
    try:
        await client.start_workflow(
            RESEND_WORKFLOW,
            request,
            id=f"{principal.tenant}/notification/{request.id}",
            task_queue=settings.task_queue,
        )
    except RPCError as err:
        raise Conflict(
            f"Temporal refused the resend: {err.message}",
            code="resend_failed",
            hint="try again",
        ) from None
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action="notification.resend",
        target=notification_id,
        details=details,
    )
    await session.commit()
    return ResendPublic(id=request.id, resend_of=notification_id, status="PENDING")
