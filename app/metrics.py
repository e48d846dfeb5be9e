"""API-side Prometheus metrics: the event path's counters and the gauges sampled from
the inbox and the run projection.

Gauges are sampled every ``metrics_sample_seconds`` by a task of each API process (not
at scrape time, so a slow database never stalls a scrape); every process reports the
same values, so dashboards take ``max``. Labels: tenant, definition-free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import observability
from tempoflow.periodic import Periodic
from tempoflow.settings import Settings

log = logging.getLogger("tempoflow.metrics")

EVENTS_INGESTED = Counter(
    "tempoflow_events_ingested",
    "Events accepted into the inbox (duplicates of a stored id count as duplicate)",
    ["tenant", "result"],
)
EVENTS_ROUTED = Counter(
    "tempoflow_events_routed",
    "Inbox events routed by a dispatcher (waits signalled, trigger runs started)",
    ["tenant"],
)
EVENTS_UNMATCHED = Counter(
    "tempoflow_events_unmatched",
    "Routed events that matched no open wait and no trigger (kept for their buffer TTL)",
    ["tenant"],
)
EVENTS_FAILED = Counter(
    "tempoflow_events_failed",
    "Events given up on after dispatch_max_attempts routing failures",
    ["tenant"],
)
RUNS_CLOSED_BY_TEMPORAL = Counter(
    "tempoflow_runs_closed_by_temporal",
    "Runs Temporal closed without their own closing write (terminated, timed out), as the "
    "reconciler or a terminate request mirrored them",
    ["tenant", "status"],
)
EVENT_DELIVERIES = Counter(
    "tempoflow_event_deliveries",
    "Deliveries of events to runs by kind (wait, trigger) and outcome (or retry)",
    ["kind", "outcome"],
)
INBOX_PENDING = Gauge("tempoflow_inbox_pending", "Events in the inbox not yet routed", ["tenant"])
INBOX_OLDEST_AGE = Gauge(
    "tempoflow_inbox_oldest_pending_age_seconds", "Age of the oldest pending inbox event"
)
DISPATCHER_LAG = Gauge(
    "tempoflow_dispatcher_lag_seconds",
    "How long the longest-due pending event has waited for a dispatcher",
)
RUNS_OPEN = Gauge("tempoflow_runs_open", "Open runs (projection)", ["tenant", "status"])
RUNS_STALE = Gauge(
    "tempoflow_runs_stale",
    "RUNNING runs with no run record and no finished step written for stale_run_seconds",
    ["tenant", "status"],
)
SAMPLE_ERRORS = Counter(
    "tempoflow_metrics_sample_errors", "Failed samplings of the inbox and run gauges"
)


def count_ingested(tenant: str, duplicates: Iterable[bool]) -> None:
    for duplicate in duplicates:
        EVENTS_INGESTED.labels(tenant, "duplicate" if duplicate else "accepted").inc()


def count_routed(tenant: str, matched: bool) -> None:
    EVENTS_ROUTED.labels(tenant).inc()
    if not matched:
        EVENTS_UNMATCHED.labels(tenant).inc()


def count_dispatch(
    batch: Iterable[Any], targets: Iterable[Any], *, routed: set[int], gave_up: set[int]
) -> None:
    """Count one dispatch round (inbox events and ``app.events.routing.Target`` s):
    events routed (and those matching nothing), events given up on, and each delivery's
    outcome (``retry`` when it will be tried again)."""
    targets = list(targets)
    matched = {t.event.seq for t in targets}
    for event in batch:
        if event.seq in routed:
            count_routed(event.tenant, event.seq in matched)
        elif event.seq in gave_up:
            EVENTS_FAILED.labels(event.tenant).inc()
    for target in targets:
        EVENT_DELIVERIES.labels(target.row["kind"], target.outcome or "retry").inc()


class GaugeSampler(Periodic):
    """Refreshes the inbox and run gauges periodically (bounded by a timeout)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        super().__init__()
        self._known: set[tuple[str, ...]] = set()

    task_name = "tempoflow-metrics-sampler"

    async def once(self) -> object:
        async with asyncio.timeout(max(self.settings.metrics_sample_seconds, 5.0)):
            await self.sample()
        return None

    def interval(self) -> float:
        return self.settings.metrics_sample_seconds

    def failed(self, err: Exception) -> None:  # the database is down: gauges keep values
        SAMPLE_ERRORS.inc()
        log.debug("sampling metrics failed: %r", err)

    async def sample(self) -> None:
        async with self.sessions() as session:
            inbox = await observability.inbox_stats(session)
            runs = await observability.open_runs(
                session, timedelta(seconds=self.settings.stale_run_seconds)
            )
        seen: set[tuple[str, ...]] = set()
        for tenant, count in inbox.pending.items():
            INBOX_PENDING.labels(tenant).set(count)
            seen.add(("inbox", tenant))
        for (tenant, status), (count, stale) in runs.items():
            RUNS_OPEN.labels(tenant, status).set(count)
            RUNS_STALE.labels(tenant, status).set(stale)
            seen.add(("runs", tenant, status))
        # A series that drained to nothing reads 0 rather than its last value.
        for key in self._known - seen:
            if key[0] == "inbox":
                INBOX_PENDING.labels(key[1]).set(0)
            else:
                RUNS_OPEN.labels(key[1], key[2]).set(0)
                RUNS_STALE.labels(key[1], key[2]).set(0)
        self._known |= seen
        INBOX_OLDEST_AGE.set(inbox.oldest_pending_age)
        DISPATCHER_LAG.set(inbox.dispatch_lag)
