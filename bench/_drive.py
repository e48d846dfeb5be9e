"""Driving a benchmark: N starts at a bounded concurrency, their latencies, percentiles,
and one Tempoflow run started as ``POST /v1/runs`` would and awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client

from activities.builtin import default_registry
from activities.registry import ActionRegistry
from app.run_starter import start_run
from projections.models import DefinitionVersionRow


def published(
    key: str, body: dict[str, Any], registry: ActionRegistry | None = None
) -> DefinitionVersionRow:
    """Version 1 of ``body`` as ``POST /v1/definitions/{key}/publish`` pins it (the
    actions' declared defaults, and which of them run as local activities)."""
    pins = (registry or default_registry()).pinned_defaults(body)
    return DefinitionVersionRow(key=key, version=1, body=body, action_defaults=pins or None)


async def drive(
    runs: int, concurrency: int, start_one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Seconds for ``runs`` calls of ``start_one`` (at most ``concurrency`` at once) and
    each call's milliseconds."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t0 = time.perf_counter()
            await start_one(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return time.perf_counter() - t0, latencies


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, rounded to 0.1."""
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


async def run_to_end(
    client: Client, queue: str, tenant: str, version: DefinitionVersionRow, data: Any
) -> None:
    """Start a run of ``version`` (as the API does) and wait for it to close."""
    started = await start_run(
        client, task_queue=queue, tenant=tenant, version=version, data=data, idempotency_key=None
    )
    await client.get_workflow_handle(started.workflow_id).result()


def compared(
    total: int, tf_time: float, bl_time: float, tf_lat: list[float], bl_lat: list[float]
) -> dict[str, float]:
    """The figures both sides of a run-throughput benchmark report."""
    tf_rps, bl_rps = total / tf_time, total / bl_time
    return {
        "tempoflow_runs_per_s": round(tf_rps, 2),
        "baseline_runs_per_s": round(bl_rps, 2),
        "throughput_ratio": round(tf_rps / bl_rps, 3),
        "tempoflow_p50_ms": pct(tf_lat, 0.5),
        "tempoflow_p99_ms": pct(tf_lat, 0.99),
        "baseline_p50_ms": pct(bl_lat, 0.5),
        "baseline_p99_ms": pct(bl_lat, 0.99),
    }
