"""The event dispatcher: routes inbox events to waiting runs (signals) and to definition
triggers (run starts), retrying while Temporal is unreachable.

It works like a transactional outbox. One transaction claims a batch of pending events
(``FOR UPDATE SKIP LOCKED``, so any number of API processes may dispatch), takes the
routing locks of their keys, and records a PENDING delivery per open wait and per
matching trigger. Signals and starts happen after the commit; a second transaction marks
each delivery and routes the event, or schedules a retry with backoff. Delivery is
at-least-once; runs ignore an event id they already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic_core import PydanticSerializationError
from sqlalchemy import case, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.data.events import off_loop
from app.run_starter import run_id_for, start_run, workflow_id
from expression import EvalContext, ExpressionError, evaluate, truthy
from projections import routing
from projections.models import (
    DefinitionRow,
    DefinitionVersionRow,
    Event,
    EventDeliveryRow,
    TriggerSubscription,
)
from projections.writer import DELIVERY_UPSERT
from tempoflow.errors import Conflict, TempoflowError
from tempoflow.records import DeliveryStatus
from tempoflow.settings import Settings
from temporal_workflows.models import EVENT_SIGNAL, EventDelivery

log = logging.getLogger("tempoflow.dispatcher")

LEASE = timedelta(seconds=60)
"""A claimed event is not claimed again for this long (a dispatcher that died mid-way)."""
SIGNAL_TIMEOUT = timedelta(seconds=10)
CONCURRENCY = 32
_PERMANENT = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.UNIMPLEMENTED,
    }
)
"""Temporal answers that retrying the same call cannot change."""
_SIGNAL_CAP = "exceeded workflow execution limit for signal"
"""Temporal's per-execution signal cap (INVALID_ARGUMENT, yet not permanent for us)."""
_UNSENDABLE = (TypeError, ValueError, RecursionError, PydanticSerializationError)
"""Raised while encoding the signal or start (e.g. a payload nested too deep)."""
_TRANSIENT = (ConnectionError, TimeoutError, OSError, RuntimeError)
"""Temporal unreachable (the client raises ``RuntimeError`` when it cannot connect)."""
_DATABASE_DOWN = (OperationalError, InterfaceError, OSError)
"""The database is unreachable: the whole round is retried (no event is to blame)."""


def trigger_run_id(tenant: str, definition: str, event_id: str) -> str:
    """One run per (definition, event): the workflow id deduplicates the start."""
    return run_id_for(tenant, f"\x00trigger\x00{definition}\x00{event_id}")


@dataclass
class _Target:
    event: Event
    row: dict[str, Any]
    """The PENDING delivery (``EventDeliveryRow`` columns)."""
    outcome: DeliveryStatus | None = None
    reason: str | None = None
    error: str | None = None
    attempt: int = 1


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

    def wake(self) -> None:
        """New events are in the inbox: route them now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.dispatch_once()
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
        """Route one batch of due events; returns how many were claimed."""
        async with self.sessions.begin() as session:  # the lease holds them for us
            events, claimed = await self._claim(session)
        if not events:
            return 0
        async with self.sessions() as session:
            subscriptions = await self._subscriptions(session, events)
        # Trigger filters are expressions: run them off the event loop.
        starts = await off_loop(functools.partial(self._all_trigger_rows, subscriptions, events))
        broken: dict[int, str] = {}
        try:
            async with self.sessions.begin() as session:
                targets = await self._route(session, events, starts)
        except _DATABASE_DOWN:
            raise
        except Exception:  # one bad event must not hold the others back: one by one
            log.exception("routing a batch failed; routing its events one by one")
            targets = []
            for event in events:
                try:
                    async with self.sessions.begin() as session:
                        targets += await self._route(session, [event], starts)
                except _DATABASE_DOWN:
                    raise
                except Exception as err:
                    broken[event.seq] = f"routing failed: {type(err).__name__}: {err}"
        for target in targets:
            target.attempt = claimed[target.event.seq]
        # One workflow's events go in inbox order (its waits take the oldest first);
        # different workflows in parallel.
        by_workflow: dict[str, list[_Target]] = {}
        for target in sorted(targets, key=lambda t: t.event.seq):
            by_workflow.setdefault(target.row["workflow_id"], []).append(target)
        await asyncio.gather(*(self._deliver_in_order(ts) for ts in by_workflow.values()))
        async with self.sessions.begin() as session:
            await self._settle(session, events, targets, claimed, broken)
        return len(events)

    async def _deliver_in_order(self, targets: list[_Target]) -> None:
        for target in targets:
            await self._deliver(target)

    async def _claim(self, session: AsyncSession) -> tuple[list[Event], dict[int, int]]:
        """Lock due events and lease them; returns them and each one's attempt number
        (the claim token: a dispatcher settles only what it still holds)."""
        stmt = (
            select(Event)
            .where(Event.status == "PENDING", Event.next_attempt_at <= func.now())
            .order_by(Event.next_attempt_at, Event.seq)
            .limit(self.settings.dispatch_batch_size)
            .with_for_update(skip_locked=True)
        )
        events = list((await session.execute(stmt)).scalars())
        if not events:
            return [], {}
        leased = await session.execute(
            update(Event)
            .where(Event.seq.in_([e.seq for e in events]))
            .values(attempts=Event.attempts + 1, next_attempt_at=func.now() + LEASE)
            .returning(Event.seq, Event.attempts)
            .execution_options(synchronize_session=False)
        )
        return events, {seq: attempts for seq, attempts in leased.all()}

    async def _route(
        self,
        session: AsyncSession,
        events: list[Event],
        starts: dict[int, list[dict[str, Any]]] | None = None,
    ) -> list[_Target]:
        """Record the deliveries of ``events`` (locks held) and return the pending ones."""
        await routing.lock(
            session,
            ((e.tenant, e.name, e.correlation_key) for e in events if e.correlation_key),
        )
        # The decision time, taken under the locks: a wait registered after it (which
        # this routing cannot see) takes these events from the inbox instead.
        await session.execute(
            update(Event)
            .where(Event.seq.in_([e.seq for e in events]))
            .values(routed_at=func.clock_timestamp())
            .execution_options(synchronize_session=False)
        )
        now = dt.datetime.now(dt.UTC)
        rows: list[dict[str, Any]] = []
        waits = await routing.open_waits(
            session, ((e.tenant, e.correlation_key) for e in events if e.correlation_key)
        )
        for event in events:
            if event.correlation_key is not None:
                # One delivery per run: signalled if any of its waits is still live.
                per_run: dict[str, dict[str, Any]] = {}
                for wait in waits[(event.tenant, event.correlation_key)]:
                    if event.name not in wait.event_names:
                        continue
                    expired = wait.expires_at is not None and wait.expires_at <= now
                    if wait.run_id in per_run and expired:
                        continue
                    per_run[wait.run_id] = {
                        "tenant": event.tenant,
                        "event_id": event.event_id,
                        "run_id": wait.run_id,
                        "workflow_id": wait.workflow_id,
                        "kind": "wait",
                        "status": DeliveryStatus.EXPIRED if expired else DeliveryStatus.PENDING,
                        "step_path": wait.step_path,
                        "definition_key": None,
                        "reason": "the wait had timed out" if expired else None,
                    }
                rows.extend(per_run.values())
            rows.extend((starts or {}).get(event.seq, []))
        if rows:
            await session.execute(insert(EventDeliveryRow).on_conflict_do_nothing(), rows)
        by_id = {(e.tenant, e.event_id): e for e in events}
        pending = (
            await session.execute(
                select(EventDeliveryRow).where(
                    EventDeliveryRow.status == DeliveryStatus.PENDING,
                    EventDeliveryRow.tenant.in_({e.tenant for e in events}),
                    EventDeliveryRow.event_id.in_([e.event_id for e in events]),
                )
            )
        ).scalars()
        return [
            _Target(
                by_id[(d.tenant, d.event_id)],
                {
                    c: getattr(d, c)
                    for c in (
                        "tenant",
                        "event_id",
                        "run_id",
                        "workflow_id",
                        "kind",
                        "step_path",
                        "definition_key",
                    )
                },
            )
            for d in pending
            if (d.tenant, d.event_id) in by_id
        ]

    async def _subscriptions(
        self, session: AsyncSession, events: list[Event]
    ) -> dict[tuple[str, str], list[TriggerSubscription]]:
        """Active trigger subscriptions by (tenant, event name)."""
        pairs = sorted({(e.tenant, e.name) for e in events})
        stmt = (
            select(TriggerSubscription)
            .join(
                DefinitionRow,
                (DefinitionRow.tenant == TriggerSubscription.tenant)
                & (DefinitionRow.key == TriggerSubscription.definition_key),
            )
            .where(
                tuple_(TriggerSubscription.tenant, TriggerSubscription.event_name).in_(pairs),
                DefinitionRow.paused.is_(False),
            )
            .order_by(TriggerSubscription.definition_key, TriggerSubscription.position)
        )
        found: dict[tuple[str, str], list[TriggerSubscription]] = {}
        for sub in (await session.execute(stmt)).scalars():
            found.setdefault((sub.tenant, sub.event_name), []).append(sub)
        return found

    def _all_trigger_rows(
        self,
        subscriptions: dict[tuple[str, str], list[TriggerSubscription]],
        events: list[Event],
    ) -> dict[int, list[dict[str, Any]]]:
        """The trigger deliveries of each event (by inbox sequence); CPU-bound."""
        return {
            e.seq: self._trigger_rows(subscriptions.get((e.tenant, e.name), []), e) for e in events
        }

    def _trigger_rows(
        self, subscriptions: list[TriggerSubscription], event: Event
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        started: set[str] = set()
        for sub in subscriptions:
            if sub.definition_key in started or not self._matches(sub.filter, event):
                continue
            started.add(sub.definition_key)
            run_id = trigger_run_id(event.tenant, sub.definition_key, event.event_id)
            rows.append(
                {
                    "tenant": event.tenant,
                    "event_id": event.event_id,
                    "run_id": run_id,
                    "workflow_id": workflow_id(event.tenant, run_id),
                    "kind": "trigger",
                    "status": DeliveryStatus.PENDING,
                    "step_path": None,
                    "definition_key": sub.definition_key,
                    "reason": None,
                }
            )
        return rows

    def _matches(self, expression: str | None, event: Event) -> bool:
        if expression is None:
            return True
        context = EvalContext.wall_clock(self.settings.expression_limits)
        try:
            return truthy(evaluate(expression, {"event": _delivery(event).public()}, context))
        except ExpressionError as err:
            log.warning("trigger filter failed for event %s: %s", event.event_id, err)
            return False

    async def _deliver(self, target: _Target) -> None:
        async with self._limit:
            try:
                if target.row["kind"] == "trigger":
                    await self._start(target)
                else:
                    await self.client.get_workflow_handle(target.row["workflow_id"]).signal(
                        EVENT_SIGNAL, _delivery(target.event), rpc_timeout=SIGNAL_TIMEOUT
                    )
                    target.outcome = DeliveryStatus.SIGNALED
            except RPCError as err:
                message = f"{err.status.name if err.status else 'RPC'}: {err.message}"[:2000]
                if err.status == RPCStatusCode.NOT_FOUND and target.row["kind"] == "wait":
                    target.outcome = DeliveryStatus.RUN_CLOSED
                    target.reason = "the run had closed"
                elif _SIGNAL_CAP in (err.message or ""):
                    # Not permanent: the run continues as new (a fresh execution has a
                    # fresh budget) and takes the event then.
                    target.error = f"{message} (retried after the run continues as new)"
                elif err.status in _PERMANENT:
                    target.outcome = DeliveryStatus.FAILED  # retrying cannot help
                    target.reason = message
                else:
                    target.error = message
            except TempoflowError as err:  # e.g. the event is not valid run input
                if err.status >= 500:
                    target.error = f"{err.code}: {err}"
                else:
                    target.outcome = DeliveryStatus.FAILED
                    target.reason = f"{err.code}: {err}"[:2000]
            except _UNSENDABLE as err:  # the event cannot be encoded: it never will be
                target.outcome = DeliveryStatus.FAILED
                target.reason = f"the event cannot be sent: {type(err).__name__}: {err}"[:2000]
            except (*_TRANSIENT, *_DATABASE_DOWN) as err:  # unreachable: retry it later
                target.error = f"{type(err).__name__}: {err}"
            except Exception as err:  # unexpected: retried, but not forever
                log.exception("delivering event %s failed", target.event.event_id)
                text = f"{type(err).__name__}: {err}"[:2000]
                if target.attempt >= self.settings.dispatch_max_attempts:
                    target.outcome = DeliveryStatus.FAILED
                    target.reason = f"gave up after {target.attempt} attempts: {text}"
                else:
                    target.error = text

    async def _start(self, target: _Target) -> None:
        event, row = target.event, target.row
        async with self.sessions() as session:
            version = (
                await session.execute(
                    select(DefinitionVersionRow)
                    .join(
                        DefinitionRow,
                        (DefinitionRow.tenant == DefinitionVersionRow.tenant)
                        & (DefinitionRow.key == DefinitionVersionRow.key)
                        & (DefinitionRow.latest_version == DefinitionVersionRow.version),
                    )
                    .where(
                        DefinitionRow.tenant == event.tenant,
                        DefinitionRow.key == row["definition_key"],
                    )
                )
            ).scalar_one_or_none()
            if version is not None:
                session.expunge(version)
        if version is None:
            target.outcome, target.reason = DeliveryStatus.FILTERED, "definition not published"
            return
        try:
            await start_run(
                self.client,
                task_queue=self.settings.task_queue,
                tenant=event.tenant,
                version=version,
                data=_delivery(event).public(),
                idempotency_key=f"\x00trigger\x00{row['definition_key']}\x00{event.event_id}",
                limits=self.settings.expression_limits,
                run_limits=self.settings.run_limits,
            )
        except Conflict:
            pass  # started before by an earlier version of the definition: still one run
        target.outcome = DeliveryStatus.STARTED

    async def _settle(
        self,
        session: AsyncSession,
        events: list[Event],
        targets: list[_Target],
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
            result = await session.execute(
                update(Event)
                .where(Event.seq == seq, Event.attempts == claimed[seq])
                .values(status="FAILED", last_error=f"gave up: {problem}"[:2000])
                .returning(Event.seq)
                .execution_options(synchronize_session=False)
            )
            held.update(result.scalars())
        routed = [
            (e.seq, claimed[e.seq]) for e in events if e.seq not in failed and e.seq not in broken
        ]
        if routed:  # one statement for the common case
            result = await session.execute(
                update(Event)
                .where(tuple_(Event.seq, Event.attempts).in_(routed))
                .values(
                    status=case((Event.correlation_key.is_(None), "UNCORRELATED"), else_="ROUTED"),
                    last_error=None,
                )
                .returning(Event.seq)
                .execution_options(synchronize_session=False)
            )
            held.update(result.scalars())
        for event in events:
            error = failed.get(event.seq)
            if error is None:
                continue
            attempts = claimed[event.seq]
            delay = min(0.5 * 2**attempts, self.settings.dispatch_max_backoff_seconds)
            result = await session.execute(
                update(Event)
                .where(Event.seq == event.seq, Event.attempts == attempts)
                .values(
                    next_attempt_at=func.now() + timedelta(seconds=delay),
                    last_error=error[:2000],
                )
                .returning(Event.seq)
                .execution_options(synchronize_session=False)
            )
            held.update(result.scalars())
        done = [t for t in targets if t.outcome is not None and t.event.seq in held]
        if done:
            await session.execute(
                DELIVERY_UPSERT,
                [{**t.row, "status": t.outcome, "reason": t.reason} for t in done],
            )


def _delivery(event: Event) -> EventDelivery:
    return EventDelivery.model_validate(routing.delivery(event))
