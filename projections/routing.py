"""Routing under the per-(tenant, event name, correlation key) advisory lock.

Wait registration and event routing each take the locks of their keys (in one global
order, so they cannot deadlock) before reading the other side. Whichever commits second
sees the first: a wait registered while an event is being routed either is found by the
router or finds the event in the inbox, so the event is never missed by both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import exists, func, literal, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import Event, EventDeliveryRow, EventType, WaitRow
from projections.records import DeliveryStatus, WaitRecord, WaitStatus
from tempoflow.correlation import lock_key

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


async def register_wait(session: AsyncSession, wait: WaitRecord, limit: int) -> list[Event]:
    """Index ``wait`` and return the inbox events it may take, oldest first: those of its
    names and key received since the wait began or within their type's buffer TTL, and
    those not routed before the wait began."""
    await lock(session, ((wait.tenant, name, wait.correlation_key) for name in wait.event_names))
    await session.execute(insert(WaitRow).values(**wait.model_dump()).on_conflict_do_nothing())
    ttl = func.coalesce(EventType.buffer_ttl_seconds, 0)
    window = func.least(literal(wait.since), func.now() - func.make_interval(0, 0, 0, 0, 0, 0, ttl))
    stmt = (
        select(Event)
        .outerjoin(EventType, (EventType.tenant == Event.tenant) & (EventType.name == Event.name))
        .where(
            Event.tenant == wait.tenant,
            Event.name.in_(wait.event_names),
            Event.correlation_key == wait.correlation_key,
            or_(
                Event.received_at >= window,
                # Received (its transaction began) before the wait began but routed
                # after it, or not routed yet: the router may have looked for waits
                # before this one existed, so the wait takes it whatever the TTL.
                Event.routed_at.is_(None),
                Event.routed_at >= literal(wait.since),
            ),
            # Not the ones this run applied already (its verdicts are written before
            # this query, in the same transaction), so a long buffer cannot crowd out
            # new events beyond the limit.
            ~exists().where(
                EventDeliveryRow.tenant == Event.tenant,
                EventDeliveryRow.event_id == Event.event_id,
                EventDeliveryRow.run_id == wait.run_id,
                EventDeliveryRow.status == DeliveryStatus.APPLIED,
            ),
        )
        .order_by(Event.seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


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
    }
