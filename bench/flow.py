"""Flow control's cost: N runs of a definition with ``limits: {"maxConcurrentRuns": 50}``
vs the same runs of the same definition without limits, all started at once.

Both sides run on the same server, in the same worker, in the same process; each side
starts its N runs as ``POST /v1/runs`` does (all at once: the limited side queues the
runs beyond 50 in its gate workflow) and waits for every one to close. Halves alternate
so neither side gets a warmer server. The limited side's peak concurrency is checked
from the projections (first step's start to the run's close).

    python bench/flow.py [--quick] [--runs N] [--limit L]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.builtin import default_registry
from bench._drive import compared, drive, run_to_end
from bench._stack import bench_stack
from launcher.worker import create_worker
from projections.db import session_factory
from projections.models import DefinitionVersionRow, RunRow, StepRow

TENANT = "bench"
STEPS = 5


def definition(limit: int | None) -> dict[str, object]:
    body: dict[str, object] = {
        "steps": [
            {"id": f"s{i}", "type": "action.call", "action": "core.noop", "input": {"i": i}}
            for i in range(STEPS)
        ]
    }
    if limit is not None:
        body["limits"] = {"maxConcurrentRuns": limit}
    return body


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        sessions = session_factory(stack.engine)
        worker = create_worker(
            client, task_queue=queue, registry=default_registry(), sessions=sessions
        )
        suffix = uuid.uuid4().hex[:8]
        limited = DefinitionVersionRow(
            key=f"bench-flow-{suffix}", version=1, body=definition(args.limit)
        )
        direct = DefinitionVersionRow(
            key=f"bench-direct-{suffix}", version=1, body=definition(None)
        )

        def side(version: DefinitionVersionRow) -> Callable[[int], Awaitable[None]]:
            async def one(i: int) -> None:
                await run_to_end(client, queue, TENANT, version, {"n": i})

            return one

        async with worker:
            warm = max(10, args.runs // 20)
            await drive(warm, warm, side(limited))
            await drive(warm, warm, side(direct))
            half = args.runs // 2
            fc_time = dr_time = 0.0
            fc_lat: list[float] = []
            dr_lat: list[float] = []
            for _ in range(2):
                t, lat = await drive(half, half, side(limited))
                fc_time, fc_lat = fc_time + t, fc_lat + lat
                t, lat = await drive(half, half, side(direct))
                dr_time, dr_lat = dr_time + t, dr_lat + lat
        peak, closed = await _peak(sessions, limited.key)
    total = 2 * half
    figures = compared(total, fc_time, dr_time, fc_lat, dr_lat)
    return {
        "bench": "flow",
        "runs": total,
        "steps_per_run": STEPS,
        "max_concurrent_runs": args.limit,
        "flow_runs_per_s": figures["tempoflow_runs_per_s"],
        "direct_runs_per_s": figures["baseline_runs_per_s"],
        "throughput_ratio": figures["throughput_ratio"],
        "flow_p50_ms": figures["tempoflow_p50_ms"],
        "flow_p99_ms": figures["tempoflow_p99_ms"],
        "direct_p50_ms": figures["baseline_p50_ms"],
        "direct_p99_ms": figures["baseline_p99_ms"],
        "flow_peak_running": peak,
        "limit_respected": peak <= args.limit,
        "flow_runs_projected": closed,
        "target_ratio": 0.9,
    }


async def _peak(sessions: async_sessionmaker[AsyncSession], key: str) -> tuple[int, int]:
    """The most runs of ``key`` running at once (first step's start to the run's close),
    and how many succeeded, from the projections."""
    async with sessions() as session:
        runs = (
            await session.execute(
                select(RunRow.run_id, RunRow.closed_at).where(
                    RunRow.definition_key == key, RunRow.status == "SUCCEEDED"
                )
            )
        ).all()
        firsts = dict(
            (
                await session.execute(
                    select(StepRow.run_id, func.min(StepRow.started_at))
                    .join(RunRow, RunRow.run_id == StepRow.run_id)
                    .where(RunRow.definition_key == key)
                    .group_by(StepRow.run_id)
                )
            ).all()
        )
    edges = sorted(
        [(firsts[r], 1) for r, _ in runs if r in firsts] + [(c, -1) for _, c in runs],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak, len(runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 2 minutes)")
    parser.add_argument("--runs", type=int, help="runs per side (default 500, quick 300)")
    parser.add_argument("--limit", type=int, default=50, help="maxConcurrentRuns")
    args = parser.parse_args()
    args.runs = args.runs or (300 if args.quick else 500)
    result = asyncio.run(main(args))
    print(json.dumps(result))
