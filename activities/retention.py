"""The worker's pruning loop (retention of closed runs and settled events).

A periodic task of every worker rather than a Temporal Schedule: pruning is
housekeeping of PostgreSQL rows, not run state, so it needs no history, no workflow
type and no schedule to create and keep in step with the settings at deploy time. Each
batch is a short transaction of at most ``prune_batch_size`` runs (or events) taken with
``SKIP LOCKED``, so any number of workers prune side by side without waiting on each
other; a round stops after ``MAX_BATCHES`` batches and resumes at the next interval.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import retention
from tempoflow.definition.model import Retention
from tempoflow.periodic import Periodic
from tempoflow.settings import Settings

log = logging.getLogger("tempoflow.retention")

MAX_BATCHES = 100
"""Batches per round and kind (runs, events) at most."""

PRUNED = Counter("tempoflow_pruned_rows", "Rows deleted by retention, by table", ["table"])
PRUNE_ERRORS = Counter("tempoflow_prune_errors", "Pruning rounds that failed")
PRUNE_LAST_SUCCESS = Gauge(
    "tempoflow_prune_last_success_timestamp_seconds", "When a pruning round last completed"
)


class Pruner(Periodic):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        super().__init__()

    async def policy(self) -> retention.Policy:
        """The tenant defaults from the settings and the definitions' overrides."""
        async with self.sessions() as session:
            raw = await retention.definition_retentions(session)
        definitions = {}
        for key, value in raw.items():
            try:
                definitions[key] = Retention.model_validate({"closedRuns": value}).closedRuns
            except ValidationError:  # validated at publish; an old body is skipped
                log.warning("definition %s/%s has an invalid retention %r", *key, value)
        conf = self.settings.retention
        return retention.Policy(conf.closed_runs, dict(conf.tenants), definitions)

    async def prune_once(self) -> dict[str, int]:
        """One round: due runs, then due events, batch by batch; rows deleted per table."""
        policy = await self.policy()
        limit = self.settings.retention.prune_batch_size
        total: Tally[str] = Tally()
        for prune in (retention.prune_runs, retention.prune_events):
            for _ in range(MAX_BATCHES):
                async with self.sessions.begin() as session:
                    counts: dict[str, Any] = await prune(session, policy, limit)
                total.update(counts)
                for table, n in counts.items():
                    PRUNED.labels(table).inc(n)
                main = counts.get("runs", counts.get("events", 0))
                if main < limit:
                    break
        PRUNE_LAST_SUCCESS.set(time.time())
        if total:
            log.info("pruned %s", dict(total))
        return dict(total)

    task_name = "tempoflow-pruner"

    async def once(self) -> object:
        return await self.prune_once()

    def interval(self) -> float:
        return self.settings.retention.prune_interval_seconds

    def failed(self, err: Exception) -> None:
        PRUNE_ERRORS.inc()
        log.error("pruning failed (retried at the next interval)", exc_info=err)
