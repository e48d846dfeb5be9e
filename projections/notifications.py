"""The notification delivery log: claim before sending, record the outcome, read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.db import Executor
from projections.models import NotificationRow

SENDING, RETRYING, SENT, FAILED = "SENDING", "RETRYING", "SENT", "FAILED"


@dataclass(frozen=True)
class Claim:
    """``SEND``: this attempt sends; ``SENT``: sent already (``provider_message_id``);
    ``HELD``: another attempt's lease is live (do not send now)."""

    status: str
    provider_message_id: str | None = None


async def claim(session: Executor, row: dict[str, Any], *, attempt: int, lease: timedelta) -> Claim:
    """Claim the notification ``row`` (its columns as the request gives them) for
    ``attempt`` until ``lease`` from now; a recorded success is returned instead, and a
    live lease of another attempt is left alone. Concurrent attempts serialize on the row."""
    table = NotificationRow.__table__.c
    until = func.now() + lease
    inserted = await session.execute(
        insert(NotificationRow)
        .values(**row, status=SENDING, attempts=attempt, claimed_until=until)
        .on_conflict_do_nothing()
        .returning(table.id)
    )
    if inserted.first() is not None:
        return Claim("SEND")
    where = (table.tenant == row["tenant"]) & (table.key == row["key"])
    found = (
        await session.execute(
            select(
                table.status,
                table.provider_message_id,
                (table.claimed_until > func.now()).label("live"),
            )
            .where(where)
            .with_for_update()
        )
    ).one()
    if found.status == SENT:
        return Claim(SENT, found.provider_message_id)
    if found.status == SENDING and found.live:
        return Claim("HELD")
    await session.execute(
        update(NotificationRow)
        .where(where)
        .values(
            status=SENDING,
            attempts=func.greatest(table.attempts, attempt),
            claimed_until=until,
            updated_at=func.now(),
        )
    )
    return Claim("SEND")


async def record(
    session: Executor,
    tenant: str,
    key: str,
    *,
    status: str,
    attempt: int,
    error: dict[str, Any] | None = None,
    provider_message_id: str | None = None,
) -> None:
    """The outcome of ``attempt`` (a recorded ``SENT`` is never overwritten)."""
    table = NotificationRow.__table__.c
    await session.execute(
        update(NotificationRow)
        .where(table.tenant == tenant, table.key == key, table.status != SENT)
        .values(
            status=status,
            attempts=func.greatest(table.attempts, attempt),
            error=error,
            provider_message_id=provider_message_id,
            claimed_until=None,
            updated_at=func.now(),
            sent_at=func.now() if status == SENT else None,
        )
    )


async def list_for_run(session: AsyncSession, tenant: str, run_id: str) -> list[NotificationRow]:
    """A run's notifications (resends included), oldest first."""
    return list(
        (
            await session.execute(
                select(NotificationRow)
                .where(NotificationRow.tenant == tenant, NotificationRow.run_id == run_id)
                .order_by(NotificationRow.created_at, NotificationRow.id)
            )
        ).scalars()
    )


async def get(session: AsyncSession, tenant: str, notification_id: str) -> NotificationRow | None:
    return (
        await session.execute(
            select(NotificationRow).where(
                NotificationRow.tenant == tenant, NotificationRow.id == notification_id
            )
        )
    ).scalar_one_or_none()


async def resends(session: AsyncSession, tenant: str, notification_id: str) -> int:
    """How many times the notification was sent again."""
    count = await session.scalar(
        select(func.count())
        .select_from(NotificationRow)
        .where(NotificationRow.tenant == tenant, NotificationRow.resend_of == notification_id)
    )
    return int(count or 0)
