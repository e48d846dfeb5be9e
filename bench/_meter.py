"""CPU and PostgreSQL transactions spent during a phase of a benchmark.

CPU comes from the operating system's per-process counters (``psutil``): this process
(the worker, and the clients driving it), the PostgreSQL server's processes and the
Temporal dev server's. Transactions are ``pg_stat_database.xact_commit`` deltas of the
benchmark's database (the statistics are flushed about once a second, so a reading waits
for that first).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

STATS_FLUSH = 1.2
"""Seconds PostgreSQL may take to publish a backend's counters (at most one second)."""


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


@dataclass
class Reading:
    worker: float
    postgres: float
    temporal: float
    commits: int


class Meter:
    """Readings of CPU seconds (per side) and committed transactions."""

    def __init__(self, engine: AsyncEngine, pgdata: Path | None) -> None:
        self.engine = engine
        self.me = psutil.Process()
        self.pg_root: psutil.Process | None = None
        if pgdata is not None:
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
            self.pg_root = psutil.Process(pid)

    def _postgres(self) -> list[psutil.Process]:
        if self.pg_root is None:
            return []
        return [self.pg_root, *self.pg_root.children(recursive=True)]

    def _temporal(self) -> list[psutil.Process]:
        return [p for p in self.me.children(recursive=True) if "temporal" in p.name()]

    async def read(self) -> Reading:
        await asyncio.sleep(STATS_FLUSH)
        async with self.engine.connect() as conn:
            await conn.execute(text("select pg_stat_clear_snapshot()"))
            commits = await conn.scalar(
                text("select xact_commit from pg_stat_database where datname = current_database()")
            )
        return Reading(
            worker=self.me.cpu_times().user + self.me.cpu_times().system,
            postgres=_cpu(self._postgres()),
            temporal=_cpu(self._temporal()),
            commits=int(commits or 0),
        )


def per_step(before: Reading, after: Reading, steps: int) -> dict[str, Any]:
    """CPU milliseconds (per process group) and transactions per action step."""
    # A reading's own query is rolled back, so it adds no commit.
    commits = after.commits - before.commits
    return {
        "worker_cpu_ms_per_step": round(1000 * (after.worker - before.worker) / steps, 3),
        "postgres_cpu_ms_per_step": round(1000 * (after.postgres - before.postgres) / steps, 3),
        "temporal_cpu_ms_per_step": round(1000 * (after.temporal - before.temporal) / steps, 3),
        "pg_transactions_per_step": round(max(commits, 0) / steps, 3),
    }
