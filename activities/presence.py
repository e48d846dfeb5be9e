"""A worker's heartbeat: the actions it loaded, recorded periodically for ``GET /v1/actions``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.registry import ActionRegistry
from projections import workers

log = logging.getLogger("tempoflow.worker")

WRITE_TIMEOUT = 5.0


def new_worker_id() -> str:
    """``host:pid:random`` (unique per process start)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PresenceReporter:
    """Records the worker's action set every ``interval`` seconds while it runs and marks
    it stopped on exit. A database outage only delays the record (logged, never raised)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ActionRegistry,
        *,
        task_queue: str,
        interval: float,
        worker_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.task_queue = task_queue
        self.interval = interval
        self.worker_id = worker_id or new_worker_id()
        self.actions = [{"name": s.name, "version": s.version} for s in registry.specs()]
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> bool:
        """One record; whether it was written."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT), self.sessions.begin() as session:
                await workers.heartbeat(session, self.worker_id, self.task_queue, self.actions)
            return True
        except Exception as err:
            log.warning("recording worker presence failed (retrying): %r", err)
            return False

    async def _loop(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> PresenceReporter:
        self._task = asyncio.create_task(self._loop(), name="tempoflow-worker-presence")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(WRITE_TIMEOUT), self.sessions.begin() as session:
                await workers.stopped(session, self.worker_id)
