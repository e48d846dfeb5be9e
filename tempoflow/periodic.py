"""A background pass repeated at an interval (the reconciler, the retention pruner, the
metrics sampler): a failing pass is reported and the next one runs on time."""

from __future__ import annotations

import asyncio
import contextlib


class Periodic:
    """Runs :meth:`once` every :meth:`interval` seconds between :meth:`start` and
    :meth:`stop`; an exception of a pass goes to :meth:`failed`."""

    task_name = "tempoflow-periodic"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> object:
        raise NotImplementedError

    def interval(self) -> float:
        raise NotImplementedError

    def failed(self, err: Exception) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.once()
            except Exception as err:  # a database or Temporal outage, or a bug: go on
                self.failed(err)
            await asyncio.sleep(self.interval())
