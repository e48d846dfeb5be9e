"""Routing under the per-(tenant, event name, correlation key) advisory lock.

Wait registration and event routing each take the locks of their keys (in one global
order, so they cannot deadlock) before reading the other side. Whichever commits second
sees the first: a wait registered while an event is being routed either is found by the
router or finds the event in the inbox, so the event is never missed by both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Text, cast, func, literal, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import deliveries, feed
from projections.models import Event, EventDeliveryRow, EventType, WaitRow
from projections.writer import write_batch
from tempoflow.correlation import lock_key
from tempoflow.records import (
    DEFERRED_REASON,
    DeliveryStatus,
    ProjectionBatch,
    WaitRecord,
    WaitStatus,
)

# One statement takes every lock, in ascending order (the subquery's ORDER BY fixes the
# order the function runs in), so two transactions never wait on each other in a cycle.
_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
)


async def lock(session: AsyncSession, keys: Iterable[tuple[str, str, str]]) -> None:
    """Take the transaction-scoped locks of (tenant, event name, key) triples, in order."""
    ordered = sorted({lock_key(*k) for k in keys})
    if ordered:
        await session.execute(_LOCK, {"keys": ordered})


CLOCK_GRACE = timedelta(seconds=2)
"""Slack between the database clock (routing decisions) and Temporal's (wait starts)."""
MAX_BUFFERED_BYTES = 1024 * 1024
"""Payload bytes one registration returns at most (Temporal caps a payload at 2 MB)."""
_UNAPPLIED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SIGNALED,
    DeliveryStatus.FILTERED,
    DeliveryStatus.DEFERRED,
)
"""Deliveries to a run that it may not hold (any more): read back when it waits."""


async def register_wait(
    session: AsyncSession,
    wait: WaitRecord,
    limit: int,
    pending: ProjectionBatch | None = None,
    max_bytes: int = MAX_BUFFERED_BYTES,
    after_seq: int = 0,
) -> list[Event]:
    """Index ``wait`` (after writing ``pending``) and return the inbox events it may take,
    oldest first, at most ``limit`` events and ``max_bytes`` of payload (at least one),
    after inbox sequence ``after_seq`` (a filtered wait reading its next page).

    Candidates are the events of its names and key that this run has not taken in an
    earlier wait and that were received since the wait began or within their type's
    buffer TTL, or whose routing was decided after it began (the router may have looked
    before this wait existed), or that were delivered to this run before and may not be
    in its inbox (refused when it was full, filtered out by another wait). Candidates
    beyond the page are recorded as ``DEFERRED`` deliveries to the run, so a later wait
    of the run reads them back even after their buffer TTL: nothing is dropped.

    The routing locks come first: the router takes them before writing delivery rows,
    so taking them after writing ``pending`` (which holds delivery rows) could deadlock.
    """
    await lock(session, ((wait.tenant, name, wait.correlation_key) for name in wait.event_names))
    if pending is not None:
        await write_batch(session, pending)
    await session.execute(insert(WaitRow).values(**wait.model_dump()).on_conflict_do_nothing())
    await feed.emit(session, ProjectionBatch(waits=[wait]))  # live streams
    ttl = func.coalesce(EventType.buffer_ttl_seconds, 0)
    window = func.least(literal(wait.since), func.now() - func.make_interval(0, 0, 0, 0, 0, 0, ttl))
    delivered = (
        select(EventDeliveryRow.event_id)
        .where(
            EventDeliveryRow.tenant == Event.tenant,
            EventDeliveryRow.event_id == Event.event_id,
            EventDeliveryRow.run_id == wait.run_id,
            EventDeliveryRow.status.in_(_UNAPPLIED),
        )
        .exists()
    )
    # Taken by an earlier wait of this run. Not "APPLIED by this run": that verdict may
    # come from a workflow task that then failed (its local activities ran, its state
    # was discarded), and the replayed wait must find the event again; an earlier wait
    # (lower sequence) is replayed identically. The run itself ignores ids it applied.
    taken = (
        select(WaitRow.seq)
        .where(
            WaitRow.run_id == wait.run_id,
            WaitRow.event_id == Event.event_id,
            WaitRow.status == WaitStatus.MATCHED,
            WaitRow.seq < wait.seq,
        )
        .exists()
    )
    stmt = (
        select(Event.seq, Event.event_id, func.length(cast(Event.payload, Text)))
        .outerjoin(EventType, (EventType.tenant == Event.tenant) & (EventType.name == Event.name))
        .where(
            Event.tenant == wait.tenant,
            Event.name.in_(wait.event_names),
            Event.correlation_key == wait.correlation_key,
            or_(
                Event.received_at >= window,
                Event.routed_at >= literal(wait.since - CLOCK_GRACE),
                delivered,
            ),
            ~taken,
            Event.seq > after_seq,
        )
        .order_by(Event.seq)
    )
    page: list[int] = []
    rest: list[str] = []
    size = 0
    for seq, event_id, length in (await session.execute(stmt)).all():
        size += length or 0
        if rest or (page and (len(page) >= limit or size > max_bytes)):
            rest.append(event_id)
        else:
            page.append(seq)
    await deliveries.add_new(
        session,
        [
            {
                "tenant": wait.tenant,
                "event_id": event_id,
                "run_id": wait.run_id,
                "workflow_id": wait.workflow_id,
                "kind": "wait",
                "status": DeliveryStatus.DEFERRED,
                "step_path": wait.step_path,
                "reason": DEFERRED_REASON,
            }
            for event_id in rest
        ],
    )
    if not page:
        return []
    events = (await session.execute(select(Event).where(Event.seq.in_(page)))).scalars()
    return sorted(events, key=lambda e: e.seq)


async def open_waits(
    session: AsyncSession, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[WaitRow]]:
    """Open waits by (tenant, correlation key), for the given pairs (call with the keys'
    locks held); callers match event names."""
    pairs = sorted(set(keys))
    found: dict[tuple[str, str], list[WaitRow]] = {p: [] for p in pairs}
    if not pairs:
        return found
    stmt = (
        select(WaitRow)
        .where(
            WaitRow.status == WaitStatus.WAITING,
            tuple_(WaitRow.tenant, WaitRow.correlation_key).in_(pairs),
        )
        .order_by(WaitRow.since, WaitRow.run_id, WaitRow.seq)
    )
    for wait in (await session.execute(stmt)).scalars():
        found[(wait.tenant, wait.correlation_key)].append(wait)
    return found


def delivery(event: Event) -> dict[str, Any]:
    """The signal payload of an inbox event (``EventDelivery`` fields)."""
    return {
        "id": event.event_id,
        "name": event.name,
        "correlation_key": event.correlation_key,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "seq": event.seq,
    }


async def list_waits(session: AsyncSession, tenant: str, run_id: str) -> list[WaitRow]:
    stmt = (
        select(WaitRow)
        .where(WaitRow.tenant == tenant, WaitRow.run_id == run_id)
        .order_by(WaitRow.seq)
    )
    return list((await session.execute(stmt)).scalars())
