"""Routing: decide an event batch's deliveries under the routing locks.

Wait registration and routing serialize per (tenant, event name, correlation key): both
take the keys' locks before reading the other side, so a wait registered while events
are routed either is found here or finds the events in the inbox.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from projections import deliveries, events, routing
from projections.models import Event, WaitRow
from tempoflow.records import DeliveryStatus
from temporal_workflows.models import EventDelivery

_TARGET_COLUMNS = (
    "tenant",
    "event_id",
    "run_id",
    "workflow_id",
    "kind",
    "step_path",
    "definition_key",
)


@dataclass
class Target:
    """A pending delivery of an event and, once delivered, its outcome."""

    event: Event
    row: dict[str, Any]
    """The PENDING delivery (``EventDeliveryRow`` columns)."""
    outcome: DeliveryStatus | None = None
    reason: str | None = None
    error: str | None = None
    attempt: int = 1


def to_delivery(event: Event) -> EventDelivery:
    """The signal payload of an inbox event."""
    return EventDelivery.model_validate(routing.delivery(event))


async def route(
    session: AsyncSession,
    batch: list[Event],
    starts: dict[int, list[dict[str, Any]]] | None = None,
) -> list[Target]:
    """Record the deliveries of ``batch`` (to open waits, and ``starts``: trigger rows
    by inbox sequence) with the locks held, and return the pending ones."""
    await routing.lock(
        session,
        ((e.tenant, e.name, e.correlation_key) for e in batch if e.correlation_key),
    )
    # The decision time, taken under the locks: a wait registered after it (which
    # this routing cannot see) takes these events from the inbox instead.
    await events.stamp_routed(session, (e.seq for e in batch))
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    waits = await routing.open_waits(
        session, ((e.tenant, e.correlation_key) for e in batch if e.correlation_key)
    )
    for event in batch:
        if event.correlation_key is not None:
            rows.extend(_wait_rows(event, waits[(event.tenant, event.correlation_key)], now))
        rows.extend((starts or {}).get(event.seq, []))
    await deliveries.add_new(session, rows)
    by_id = {(e.tenant, e.event_id): e for e in batch}
    pending = await deliveries.pending(
        session, {e.tenant for e in batch}, [e.event_id for e in batch]
    )
    return [
        Target(by_id[(d.tenant, d.event_id)], {c: getattr(d, c) for c in _TARGET_COLUMNS})
        for d in pending
        if (d.tenant, d.event_id) in by_id
    ]


def _wait_rows(event: Event, waits: list[WaitRow], now: dt.datetime) -> list[dict[str, Any]]:
    """One delivery per run: signalled if any of its waits is still live."""
    per_run: dict[str, dict[str, Any]] = {}
    for wait in waits:
        if event.name not in wait.event_names:
            continue
        expired = wait.expires_at is not None and wait.expires_at <= now
        if wait.run_id in per_run and expired:
            continue
        per_run[wait.run_id] = {
            "tenant": event.tenant,
            "event_id": event.event_id,
            "run_id": wait.run_id,
            "workflow_id": wait.workflow_id,
            "kind": "wait",
            "status": DeliveryStatus.EXPIRED if expired else DeliveryStatus.PENDING,
            "step_path": wait.step_path,
            "definition_key": None,
            "reason": "the wait had timed out" if expired else None,
        }
    return list(per_run.values())
