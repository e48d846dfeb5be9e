"""Event ingress (durable before 202, deduplicated by id) and the routing record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from activities.tracing import current_context
from app import metrics
from app.auth import Principal
from app.deps import SessionDep, SettingsDep, require
from app.events import ingress
from app.pagination import decode_cursor, encode_cursor
from app.schemas import (
    DeliveryPublic,
    EventBatchCreate,
    EventCreate,
    EventPublic,
    EventReceipt,
    EventReceipts,
    EventsPublic,
)
from projections import deliveries, events, redaction
from projections.events import Receipt
from projections.models import Event, EventDeliveryRow
from tempoflow.errors import NotFound, TempoflowError
from tempoflow.redaction import Redaction
from tempoflow.settings import Settings

router = APIRouter(prefix="/v1", tags=["events"])

Ingest = Annotated[Principal, Depends(require("ingest"))]
EventReader = Annotated[Principal, Depends(require("ingest", "publisher", "operator"))]
Masks = dict[str, list[Redaction]]


def public_status(event: Receipt | Event) -> str:
    """``PENDING`` until routed; then ``ROUTED``, or ``UNCORRELATED`` for an event without
    a key (rows routed before that status existed say ``ROUTED``)."""
    if event.status != "PENDING" and event.correlation_key is None:
        return "UNCORRELATED"
    return event.status


def _receipt(event: Receipt | Event, duplicate: bool) -> EventReceipt:
    return EventReceipt(
        id=event.event_id,
        name=event.name,
        correlation_key=event.correlation_key,
        correlated=event.correlation_key is not None,
        status=public_status(event),
        received_at=event.received_at,
        duplicate=duplicate,
    )


async def _redactions(
    session: AsyncSession, tenant: str, found: dict[str, list[EventDeliveryRow]]
) -> Masks:
    """How to mask each event: by the ``redact`` pointers of every run it was delivered
    to (the inbox keeps the real payload for delivery)."""
    routed = [d for ds in found.values() for d in ds]
    by_run, by_key = await redaction.payload_redactions(
        session,
        tenant,
        {d.run_id for d in routed},
        {d.definition_key for d in routed if d.definition_key},
    )
    masks: Masks = {}
    for event_id, ds in found.items():
        for d in ds:
            mask = by_run.get(d.run_id) or by_key.get(d.definition_key or "")
            if mask:
                masks.setdefault(event_id, []).append(mask)
    return masks


def _public(
    event: Event, routed: list[EventDeliveryRow], masks: list[Redaction] | None = None
) -> EventPublic:
    payload = event.payload
    for mask in masks or ():
        payload = mask.payload(payload)
    return EventPublic(
        **_receipt(event, False).model_dump(exclude={"duplicate"}),
        payload=payload,
        occurred_at=event.occurred_at,
        key_source=event.key_source,
        attempts=event.attempts,
        last_error=event.last_error,
        routed_at=event.routed_at,
        deliveries=[
            DeliveryPublic(
                run_id=d.run_id,
                workflow_id=d.workflow_id,
                kind=d.kind,
                status=d.status,
                step_path=d.step_path,
                definition=d.definition_key,
                reason=d.reason,
                updated_at=d.updated_at,
            )
            for d in routed
        ],
    )


async def _accept(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    settings: Settings,
    items: list[EventCreate],
    base: str,
) -> list[tuple[Receipt, bool]]:
    prepared = await ingress.prepare(
        session, principal.tenant, items, settings, base, request.app.state.event_types
    )
    trace_context = current_context(settings)
    if trace_context:
        for item in prepared:
            item.row["trace_context"] = trace_context
    stored = await ingress.store(session, principal.tenant, prepared)
    await session.commit()  # durable before the answer
    metrics.count_ingested(principal.tenant, (duplicate for _, duplicate in stored))
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None and any(not duplicate for _, duplicate in stored):
        dispatcher.wake()
    return stored


@router.post("/events", response_model=EventReceipt, status_code=202)
async def post_event(
    body: EventCreate,
    request: Request,
    principal: Ingest,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> EventReceipt:
    """Accept one event: 202 once it is durable in the inbox; 200 with the first receipt
    when its id was seen before."""
    [(event, duplicate)] = await _accept(request, principal, session, settings, [body], "")
    if duplicate:
        response.status_code = 200
    return _receipt(event, duplicate)


@router.post("/events:batch", response_model=EventReceipts, status_code=202)
async def post_events(
    body: EventBatchCreate,
    request: Request,
    principal: Ingest,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> EventReceipts:
    """Accept up to ``TEMPOFLOW_MAX_BATCH_EVENTS`` events at once, all or none."""
    if len(body.events) > settings.max_batch_events:
        raise TempoflowError(
            f"the batch has {len(body.events)} events; the limit is {settings.max_batch_events}",
            code="batch_too_large",
            status=413,
            hint="split the batch",
        )
    stored = await _accept(request, principal, session, settings, body.events, "/events")
    if all(duplicate for _, duplicate in stored):
        response.status_code = 200
    return EventReceipts(items=[_receipt(e, d) for e, d in stored])


@router.get("/events", response_model=EventsPublic)
async def list_events(
    principal: EventReader,
    session: SessionDep,
    settings: SettingsDep,
    name: str | None = None,
    correlation_key: Annotated[str | None, Query(alias="correlationKey")] = None,
    status: Annotated[str | None, Query(pattern="^(PENDING|ROUTED|UNCORRELATED|FAILED)$")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> EventsPublic:
    """Newest first; ``status=UNCORRELATED`` lists events without a correlation key."""
    size = min(limit or settings.default_page_size, settings.max_page_size)
    after = decode_cursor(cursor, (int,))
    rows = await events.list_events(
        session,
        principal.tenant,
        limit=size + 1,
        before=int(after[0]) if after else None,
        name=name,
        correlation_key=correlation_key,
        status=status,
    )
    page = rows[:size]
    found = await deliveries.of_events(session, principal.tenant, [e.event_id for e in page])
    masks = await _redactions(session, principal.tenant, found)
    return EventsPublic(
        items=[_public(e, found[e.event_id], masks.get(e.event_id)) for e in page],
        next_cursor=encode_cursor([page[-1].seq]) if len(rows) > size else None,
    )


@router.get("/events/{event_id}", response_model=EventPublic)
async def get_event(
    event_id: Annotated[str, Path(min_length=1, max_length=200)],
    principal: EventReader,
    session: SessionDep,
) -> EventPublic:
    """The event and its routing: key, runs it was delivered to or started, and why
    candidate waits did not take it."""
    event = await events.get_event(session, principal.tenant, event_id)
    if event is None:
        raise NotFound(f"event {event_id!r} does not exist", code="event_not_found")
    found = await deliveries.of_events(session, principal.tenant, [event_id])
    masks = await _redactions(session, principal.tenant, found)
    return _public(event, found[event_id], masks.get(event_id))
