"""Live streams: one ``LISTEN`` connection per API process, fanned out to its streams.

Projection writes notify channel ``tempoflow_feed`` (``projections/feed.py``) in the
transaction that adds feed entries, from whichever process wrote them; the hub wakes
the streams of the tenants (and runs) named in the payload, and each stream then reads
the feed table itself. Notifications only wake: the table is the truth, so a stream
also reads it every ``stream_poll_seconds`` (notifications sent while the connection
was down are not replayed) and after the connection comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import asyncpg

from projections.feed import CHANNEL

log = logging.getLogger("tempoflow.streams")


class Subscription:
    """One stream's wake-up flag."""

    def __init__(self, tenant: str, run_id: str | None) -> None:
        self.tenant = tenant
        self.run_id = run_id
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (a poll interval)
        """Wait for a wake-up (True) or ``timeout`` seconds (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()


class FeedHub:
    """The process's listener on the feed channel (started with the first stream)."""

    def __init__(self, database_url: str, *, reconnect_seconds: float = 1.0) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._reconnect = reconnect_seconds
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the ``LISTEN`` connection is up (tests wait for it)."""

    def subscribe(self, tenant: str, run_id: str | None = None) -> Subscription:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="tempoflow-feed-listener")
        sub = Subscription(tenant, run_id)
        self._subs[tenant].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.tenant)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.tenant]

    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _wake_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.wake()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == "*":
            self._wake_all()
            return
        for target in payload.split():
            tenant, _, run_id = target.partition("/")
            for sub in self._subs.get(tenant, ()):
                if sub.run_id is None or sub.run_id == run_id:
                    sub.wake()

    async def _listen(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.listening.set()
                self._wake_all()  # entries written while not listening
                await lost.wait()
                log.warning("feed listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("feed listener cannot connect: %r (retrying)", err)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(self._reconnect)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()
