"""The event dispatcher: routes inbox events to waiting runs (signals) and to definition
triggers (run starts), retrying while Temporal is unreachable.

It works like a transactional outbox. One transaction claims a batch of pending events
(``FOR UPDATE SKIP LOCKED``, so any number of API processes may dispatch), takes the
routing locks of their keys, and records a PENDING delivery per open wait and per
matching trigger. Signals and starts happen after the commit; a second transaction marks
each delivery and routes the event, or schedules a retry with backoff. Delivery is
at-least-once; runs ignore an event id they already applied.

Rounds overlap: the next claim does not wait for the previous round's signals and
settling (up to ``ROUNDS_IN_FLIGHT`` rounds at once), so an event that arrives while a
round signals is routed right away instead of after that round. A workflow's deliveries
still go one after another in inbox order across rounds (each waits for that workflow's
deliveries of the earlier rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from app import metrics
from app.events import routing, triggers
from app.events.delivery import DATABASE_DOWN, deliver
from app.events.offload import off_loop
from app.events.routing import Target
from projections import deliveries, events
from projections import triggers as subscribed
from projections.models import Event
from tempoflow.settings import Settings

log = logging.getLogger("tempoflow.dispatcher")

LEASE = timedelta(seconds=60)
"""A claimed event is not claimed again for this long (a dispatcher that died mid-way)."""
CONCURRENCY = 32
"""Signals and starts in flight at once (all rounds together)."""
ROUNDS_IN_FLIGHT = 2
"""Rounds whose deliveries and settling may overlap."""


class Dispatcher:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], client: Client, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._rounds = asyncio.Semaphore(ROUNDS_IN_FLIGHT)
        self._finishing: set[asyncio.Task[None]] = set()
        self._chains: dict[str, asyncio.Task[None]] = {}
        """Each workflow's latest delivery task: the next round's wait for it."""

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="tempoflow-dispatcher")

    async def stop(self) -> None:
        """Stop after the current round (a round's signals and settling are not cut)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.gather(*self._finishing, return_exceptions=True)

    def wake(self) -> None:
        """New events are in the inbox: route them now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._begin_round()
                failures = 0
            except Exception:  # the database is down or a bug: log, back off, go on
                log.exception("event dispatch failed")
                failures += 1
                claimed = 0
                await self._pause(
                    min(0.5 * 2**failures, self.settings.dispatch_max_backoff_seconds)
                )
            if claimed >= self.settings.dispatch_batch_size:
                continue  # more are waiting
            await self._pause(self.settings.dispatch_poll_seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep until woken (new events, or stop) or ``seconds`` pass."""
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # -- one round -------------------------------------------------------------------------
    async def dispatch_once(self) -> int:
        """Route one batch of due events, signals and settling included; returns how many
        were claimed."""
        prepared = await self._prepare()
        if prepared is None:
            return 0
        await self._finish(*prepared)
        return len(prepared[0])

    async def _begin_round(self) -> int:
        """Claim and route a batch, and leave its deliveries and settling to a task of
        their own (at most ``ROUNDS_IN_FLIGHT`` at once); returns how many were claimed."""
        await self._rounds.acquire()
        try:
            prepared = await self._prepare()
        except BaseException:
            self._rounds.release()
            raise
        if prepared is None:
            self._rounds.release()
            return 0
        task = asyncio.create_task(self._finish_logged(*prepared))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        task.add_done_callback(lambda _: self._rounds.release())
        return len(prepared[0])

    async def _finish_logged(self, *prepared: Any) -> None:
        try:
            await self._finish(*prepared)
        except Exception:  # its events' leases run out and they are claimed again
            log.exception("settling a dispatch round failed")

    async def _prepare(
        self,
    ) -> (
        tuple[list[Event], dict[int, int], list[Target], dict[int, str], list[asyncio.Task[None]]]
        | None
    ):
        """Claim due events and record their pending deliveries; the deliveries are
        started (each after the same workflow's earlier ones) before this returns."""
        async with self.sessions.begin() as session:  # the lease holds them for us
            batch, claimed = await self._claim(session)
        if not batch:
            return None
        async with self.sessions() as session:
            subscriptions = await subscribed.subscriptions(
                session, ((e.tenant, e.name) for e in batch)
            )
        # Trigger filters are expressions: run them off the event loop.
        starts = await off_loop(
            functools.partial(
                triggers.trigger_rows, subscriptions, batch, self.settings.expression_limits
            )
        )
        broken: dict[int, str] = {}
        try:
            async with self.sessions.begin() as session:
                targets = await self._route(session, batch, starts)
        except DATABASE_DOWN:
            raise
        except Exception:  # one bad event must not hold the others back: one by one
            log.exception("routing a batch failed; routing its events one by one")
            targets = []
            for event in batch:
                try:
                    async with self.sessions.begin() as session:
                        targets += await self._route(session, [event], starts)
                except DATABASE_DOWN:
                    raise
                except Exception as err:
                    broken[event.seq] = f"routing failed: {type(err).__name__}: {err}"
        for target in targets:
            target.attempt = claimed[target.event.seq]
        # One workflow's events go in inbox order (its waits take the oldest first);
        # different workflows in parallel.
        by_workflow: dict[str, list[Target]] = {}
        for target in sorted(targets, key=lambda t: t.event.seq):
            by_workflow.setdefault(target.row["workflow_id"], []).append(target)
        # Started here, before the next claim: their order is the rounds' order.
        sending = [self._chain(wid, ts) for wid, ts in by_workflow.items()]
        return batch, claimed, targets, broken, sending

    async def _finish(
        self,
        batch: list[Event],
        claimed: dict[int, int],
        targets: list[Target],
        broken: dict[int, str],
        sending: list[asyncio.Task[None]],
    ) -> None:
        """Wait for a round's deliveries, then settle it."""
        if sending:
            await asyncio.wait(sending)
        async with self.sessions.begin() as session:
            await self._settle(session, batch, targets, claimed, broken)

    def _chain(self, workflow_id: str, targets: list[Target]) -> asyncio.Task[None]:
        """Deliver ``targets`` (one workflow's, in inbox order) after that workflow's
        deliveries of earlier rounds."""
        previous = self._chains.get(workflow_id)
        task = asyncio.create_task(self._deliver_in_order(targets, previous))
        self._chains[workflow_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._chains.get(workflow_id) is done:
                del self._chains[workflow_id]

        task.add_done_callback(forget)
        return task

    async def _deliver_in_order(
        self, targets: list[Target], previous: asyncio.Task[None] | None = None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its round's to settle
        for target in targets:
            async with self._limit:
                await self._deliver_one(target)

    async def _deliver_one(self, target: Target) -> None:
        await deliver(target, self.client, self.sessions, self.settings)

    async def _claim(self, session: AsyncSession) -> tuple[list[Event], dict[int, int]]:
        """Lock due events and lease them; returns them and each one's attempt number
        (the claim token: a dispatcher settles only what it still holds)."""
        return await events.claim(session, limit=self.settings.dispatch_batch_size, lease=LEASE)

    async def _route(
        self,
        session: AsyncSession,
        batch: list[Event],
        starts: dict[int, list[dict[str, Any]]] | None = None,
    ) -> list[Target]:
        """Record the deliveries of ``batch`` (locks held) and return the pending ones."""
        return await routing.route(session, batch, starts)

    async def _settle(
        self,
        session: AsyncSession,
        batch: list[Event],
        targets: list[Target],
        claimed: dict[int, int],
        broken: dict[int, str] | None = None,
    ) -> None:
        """Mark routed events (or schedule their retry), then record the deliveries: in
        the claim's lock order (events, then deliveries), and only for events this
        dispatcher still holds (its lease may have run out and another claimed them).
        An event whose routing keeps failing ends ``FAILED`` after
        ``dispatch_max_attempts`` (retrying a bad event forever would only spin)."""
        failed: dict[int, str] = {}
        for t in targets:
            if t.outcome is None:
                failed[t.event.seq] = t.error or "delivery failed"
        held: set[int] = set()
        broken = broken or {}
        for seq, problem in broken.items():
            if claimed[seq] < self.settings.dispatch_max_attempts:
                failed[seq] = problem
                continue
            held.update(await events.mark_failed(session, seq, claimed[seq], f"gave up: {problem}"))
        routed = [
            (e.seq, claimed[e.seq]) for e in batch if e.seq not in failed and e.seq not in broken
        ]
        gave_up = set(held)
        if routed:  # one statement for the common case
            held.update(await events.mark_routed(session, routed))
        metrics.count_dispatch(batch, targets, routed=held - gave_up, gave_up=gave_up)
        for event in batch:
            error = failed.get(event.seq)
            if error is None:
                continue
            attempts = claimed[event.seq]
            delay = min(0.5 * 2**attempts, self.settings.dispatch_max_backoff_seconds)
            held.update(
                await events.schedule_retry(
                    session, event.seq, attempts, timedelta(seconds=delay), error
                )
            )
        done = [t for t in targets if t.outcome is not None and t.event.seq in held]
        await deliveries.record(
            session, [{**t.row, "status": t.outcome, "reason": t.reason} for t in done]
        )
