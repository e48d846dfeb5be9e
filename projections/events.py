"""The event inbox (primary data): durable deduplicated storage, reads, and the
dispatcher's claim, lease and settling statements."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, case, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import routing
from projections.models import Event


class Receipt(Protocol):
    """What an ingress answer needs of a stored event."""

    event_id: str
    name: str
    correlation_key: str | None
    status: str
    received_at: dt.datetime


_RECEIPT = [Event.event_id, Event.name, Event.correlation_key, Event.status, Event.received_at]
_STORE = insert(cast(Table, Event.__table__)).on_conflict_do_nothing().returning(*_RECEIPT)


async def store(
    session: AsyncSession, tenant: str, rows: list[dict[str, Any]]
) -> list[tuple[Receipt, bool]]:
    """Insert new events (``Event`` columns), keep existing ids; returns ``(receipt,
    duplicate)`` in request order. Core statements returning only the receipt columns:
    this is the ingress hot path, and ORM entities cost more than the insert."""
    if len(rows) > 1:
        # Inserted in the order sent (the inbox order runs see). Two batches sharing ids
        # first take the ids' locks in one global order, so they cannot deadlock on each
        # other's rows; the later one reports the shared ids as duplicates.
        await routing.lock(session, ((tenant, "\x00id", r["event_id"]) for r in rows))
    # One statement built once, executed with the rows as parameters: compiled once per
    # process (``.values(rows)`` would compile per request).
    result = await session.execute(_STORE, rows[0] if len(rows) == 1 else rows)
    stored: dict[str, Receipt] = {r.event_id: cast(Receipt, r) for r in result.all()}
    inserted = set(stored)
    ids = [r["event_id"] for r in rows]
    repeated = set(ids) - inserted
    if repeated:  # the first receipts of ids seen before
        stmt2 = select(*_RECEIPT).where(Event.tenant == tenant, Event.event_id.in_(repeated))
        stored.update((r.event_id, cast(Receipt, r)) for r in (await session.execute(stmt2)).all())
    out: list[tuple[Receipt, bool]] = []
    seen: set[str] = set()
    for event_id in ids:
        out.append((stored[event_id], event_id not in inserted or event_id in seen))
        seen.add(event_id)
    return out


async def get_event(session: AsyncSession, tenant: str, event_id: str) -> Event | None:
    return await session.get(Event, (tenant, event_id))


async def list_events(
    session: AsyncSession,
    tenant: str,
    *,
    limit: int,
    before: int | None,
    name: str | None,
    correlation_key: str | None,
    status: str | None,
) -> list[Event]:
    """Newest first (keyset on the inbox sequence)."""
    stmt = select(Event).where(Event.tenant == tenant)
    if before is not None:
        stmt = stmt.where(Event.seq < before)
    if name is not None:
        stmt = stmt.where(Event.name == name)
    if correlation_key is not None:
        stmt = stmt.where(Event.correlation_key == correlation_key)
    if status == "PENDING":
        stmt = stmt.where(Event.status == "PENDING")
    elif status == "UNCORRELATED":  # routed (to triggers only): no key
        stmt = stmt.where(Event.correlation_key.is_(None), Event.status != "PENDING")
    elif status is not None:
        stmt = stmt.where(Event.status == status, Event.correlation_key.is_not(None))
    return list((await session.execute(stmt.order_by(Event.seq.desc()).limit(limit))).scalars())


# -- the dispatcher's statements ---------------------------------------------------------


async def claim(
    session: AsyncSession, *, limit: int, lease: timedelta
) -> tuple[list[Event], dict[int, int]]:
    """Lock up to ``limit`` due events (skipping ones other dispatchers hold) and lease
    them for ``lease``; returns them and each one's attempt number (the claim token)."""
    stmt = (
        select(Event)
        .where(Event.status == "PENDING", Event.next_attempt_at <= func.now())
        .order_by(Event.next_attempt_at, Event.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    events = list((await session.execute(stmt)).scalars())
    if not events:
        return [], {}
    leased = await session.execute(
        update(Event)
        .where(Event.seq.in_([e.seq for e in events]))
        .values(attempts=Event.attempts + 1, next_attempt_at=func.now() + lease)
        .returning(Event.seq, Event.attempts)
        .execution_options(synchronize_session=False)
    )
    return events, {seq: attempts for seq, attempts in leased.all()}


async def stamp_routed(session: AsyncSession, seqs: Iterable[int]) -> None:
    """Record the routing decision time (the database's clock, under the routing locks)."""
    await session.execute(
        update(Event)
        .where(Event.seq.in_(list(seqs)))
        .values(routed_at=func.clock_timestamp())
        .execution_options(synchronize_session=False)
    )


async def mark_routed(session: AsyncSession, held: list[tuple[int, int]]) -> list[int]:
    """Mark events routed (``UNCORRELATED`` without a key), for the (seq, attempt) pairs
    still held; returns the sequences marked."""
    result = await session.execute(
        update(Event)
        .where(tuple_(Event.seq, Event.attempts).in_(held))
        .values(
            status=case((Event.correlation_key.is_(None), "UNCORRELATED"), else_="ROUTED"),
            last_error=None,
        )
        .returning(Event.seq)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def mark_failed(session: AsyncSession, seq: int, attempt: int, error: str) -> list[int]:
    """Give up on an event (if ``attempt`` still holds it); returns the sequences marked."""
    result = await session.execute(
        update(Event)
        .where(Event.seq == seq, Event.attempts == attempt)
        .values(status="FAILED", last_error=error[:2000])
        .returning(Event.seq)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def schedule_retry(
    session: AsyncSession, seq: int, attempt: int, delay: timedelta, error: str
) -> list[int]:
    """Retry an event after ``delay`` (if ``attempt`` still holds it); returns the
    sequences rescheduled."""
    result = await session.execute(
        update(Event)
        .where(Event.seq == seq, Event.attempts == attempt)
        .values(next_attempt_at=func.now() + delay, last_error=error[:2000])
        .returning(Event.seq)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())
