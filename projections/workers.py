"""Worker presence: which actions the running workers loaded (``GET /v1/actions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import WorkerPresence

FORGET_AFTER = timedelta(days=7)
"""Rows of workers not seen for this long are deleted (by any worker's heartbeat)."""


async def heartbeat(
    session: AsyncSession, worker_id: str, task_queue: str, actions: list[dict[str, Any]]
) -> None:
    """Record that ``worker_id`` runs with ``actions`` now (database clock)."""
    stmt = insert(WorkerPresence).values(
        worker_id=worker_id, task_queue=task_queue, actions=actions
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[WorkerPresence.worker_id],
            set_={
                "actions": stmt.excluded.actions,
                "task_queue": stmt.excluded.task_queue,
                "last_seen": func.now(),
                "stopped_at": None,
            },
        )
    )
    await session.execute(
        delete(WorkerPresence).where(WorkerPresence.last_seen < func.now() - FORGET_AFTER)
    )


async def stopped(session: AsyncSession, worker_id: str) -> None:
    """The worker shut down: it no longer counts as available."""
    await session.execute(
        update(WorkerPresence)
        .where(WorkerPresence.worker_id == worker_id)
        .values(stopped_at=func.now(), last_seen=func.now())
    )


@dataclass
class ActionPresence:
    """What the workers of a task queue report about one action."""

    available: bool = False
    last_seen: datetime | None = None
    versions: set[int] = field(default_factory=set)
    """Versions loaded by available workers."""


async def action_presence(
    session: AsyncSession, task_queue: str, window: timedelta
) -> dict[str, ActionPresence]:
    """Per action name: whether a worker of ``task_queue`` seen within ``window`` (and not
    stopped) has it, and when any worker that has it was last seen."""
    live = (WorkerPresence.stopped_at.is_(None)) & (WorkerPresence.last_seen >= func.now() - window)
    rows = await session.execute(
        select(WorkerPresence.actions, WorkerPresence.last_seen, live.label("live")).where(
            WorkerPresence.task_queue == task_queue
        )
    )
    found: dict[str, ActionPresence] = {}
    for actions, last_seen, is_live in rows:
        for item in actions or []:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            entry = found.setdefault(name, ActionPresence())
            if entry.last_seen is None or last_seen > entry.last_seen:
                entry.last_seen = last_seen
            if is_live:
                entry.available = True
                if isinstance(item.get("version"), int):
                    entry.versions.add(item["version"])
    return found
