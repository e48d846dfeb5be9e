"""What a wait registration hands the run: events it can receive, or a recorded refusal."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from projections import deliveries, routing
from projections.models import Event
from tempoflow.records import DeliveryStatus, WaitRecord
from temporal_workflows.models import EventDelivery


async def sendable(
    session: AsyncSession, wait: WaitRecord, events: list[Event]
) -> list[EventDelivery]:
    """``events`` as run deliveries, leaving out any that cannot be encoded for the run
    (e.g. nested too deep): those get a ``FAILED`` delivery with the reason, instead of
    failing the registration on every retry."""
    out: list[EventDelivery] = []
    failed: list[dict[str, Any]] = []
    for event in events:
        try:
            delivery = EventDelivery.model_validate(routing.delivery(event))
            delivery.model_dump_json()
        except (ValueError, RecursionError) as err:
            failed.append(
                {
                    "tenant": wait.tenant,
                    "event_id": event.event_id,
                    "run_id": wait.run_id,
                    "workflow_id": wait.workflow_id,
                    "kind": "wait",
                    "status": DeliveryStatus.FAILED,
                    "step_path": wait.step_path,
                    "definition_key": None,
                    "reason": f"the event cannot be sent: {type(err).__name__}: {err}"[:2000],
                }
            )
            continue
        out.append(delivery)
    await deliveries.record(session, failed)
    return out
