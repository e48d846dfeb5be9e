"""Tempoflow vs a hand-written Temporal workflow: N runs of 10 sequential no-op actions.

Both run on the same server, in the same worker (same runner, same limits), in the same
process. Tempoflow runs with projections on (every step lands in PostgreSQL), so the
ratio measures interpreter plus projection overhead.

    python bench/interpreter.py [--quick] [--runs N] [--concurrency C]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from activities.builtin import default_registry
from app.run_starter import start_run
from bench._baseline import STEPS, BaselineLoop, BaselineWorkflow, baseline_noop
from bench._drive import compared, drive, published, run_to_end
from bench._meter import Meter, Reading, per_step
from bench._stack import bench_stack
from launcher.worker import create_worker
from projections.db import session_factory
from projections.models import RunRow, StepRow

TENANT = "bench"
DEFINITION = {
    "steps": [
        {
            "id": f"s{i}",
            "type": "action.call",
            "action": "core.noop",
            "input": {"i": i},
            "output": f"r{i}",
        }
        for i in range(STEPS)
    ]
}


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        sessions = session_factory(stack.engine)
        worker = create_worker(
            client,
            task_queue=queue,
            registry=default_registry(),
            sessions=sessions,
            workflows=[BaselineWorkflow, BaselineLoop],
            activities=[baseline_noop],
            workflow_runner=UnsandboxedWorkflowRunner() if args.unsandboxed else None,
        )
        version = published("bench-noop", DEFINITION)

        async def tempoflow(i: int) -> None:
            await run_to_end(client, queue, TENANT, version, {"n": i})

        async def baseline(i: int) -> None:
            await client.execute_workflow(
                BaselineWorkflow.run, i, id=f"baseline-{uuid.uuid4()}", task_queue=queue
            )

        async with worker:
            warm = max(5, args.runs // 20)
            await drive(warm, args.concurrency, tempoflow)
            await drive(warm, args.concurrency, baseline)
            # Alternate halves so neither side gets a warmer server.
            half = args.runs // 2
            tf_time = bl_time = 0.0
            tf_lat: list[float] = []
            bl_lat: list[float] = []
            meter = Meter(stack.engine, stack.pgdata)
            tf_cost: list[tuple[Reading, Reading]] = []
            bl_cost: list[tuple[Reading, Reading]] = []
            for _ in range(2):
                before = await meter.read()
                t, lat = await drive(half, args.concurrency, tempoflow)
                tf_time, tf_lat = tf_time + t, tf_lat + lat
                middle = await meter.read()
                t, lat = await drive(half, args.concurrency, baseline)
                bl_time, bl_lat = bl_time + t, bl_lat + lat
                tf_cost.append((before, middle))
                bl_cost.append((middle, await meter.read()))
            loops = {}
            for concurrency in (1, 20):
                loops[concurrency] = await _loops(client, queue, args.items, concurrency)
        async with sessions() as session:
            closed = await session.scalar(
                select(func.count())
                .select_from(RunRow)
                .where(RunRow.status == "SUCCEEDED", RunRow.definition_key == "bench-noop")
            )
            steps = await session.scalar(
                select(func.count())
                .select_from(StepRow)
                .join(RunRow, RunRow.run_id == StepRow.run_id)
                .where(StepRow.status == "SUCCEEDED", RunRow.definition_key == "bench-noop")
            )
    total = 2 * half
    tf_per_step = _cost(tf_cost, total * STEPS)
    bl_per_step = _cost(bl_cost, total * STEPS)
    return {
        "bench": "interpreter",
        "runs": total,
        "steps_per_run": STEPS,
        "concurrency": args.concurrency,
        **compared(total, tf_time, bl_time, tf_lat, bl_lat),
        **{f"tempoflow_{k}": v for k, v in tf_per_step.items()},
        **{f"baseline_{k}": v for k, v in bl_per_step.items()},
        "projected_runs": closed,
        "projected_steps": steps,
        "projections_complete": closed == total + warm and steps == (total + warm) * STEPS,
        "runner": "unsandboxed" if args.unsandboxed else "sandboxed",
        "foreach_items": args.items,
        **{f"foreach_c{c}_tempoflow_s": v[0] for c, v in loops.items()},
        **{f"foreach_c{c}_baseline_s": v[1] for c, v in loops.items()},
        **{f"foreach_c{c}_ratio": round(v[1] / v[0], 3) for c, v in loops.items()},
    }


def _cost(phases: list[tuple[Reading, Reading]], steps: int) -> dict[str, float]:
    """Per action step over several measured phases."""
    totals = [per_step(a, b, steps) for a, b in phases]
    return {k: round(sum(t[k] for t in totals), 3) for k in totals[0]}


async def _loops(client: Client, queue: str, items: int, concurrency: int) -> tuple[float, float]:
    """One for-each run of ``items`` actions vs the hand-written loop (seconds each)."""
    body = {
        "steps": [
            {
                "id": "each",
                "type": "control.forEach",
                "items": f"[1..{items}]",
                "concurrency": concurrency,
                "steps": [
                    {
                        "id": "a",
                        "type": "action.call",
                        "action": "core.noop",
                        "input": {"i": {"$expr": "item"}},
                    }
                ],
            }
        ]
    }
    version = published(f"bench-loop-{concurrency}", body)
    t0 = time.perf_counter()
    started = await start_run(
        client, task_queue=queue, tenant=TENANT, version=version, data={}, idempotency_key=None
    )
    await client.get_workflow_handle(started.workflow_id).result()
    tempoflow = time.perf_counter() - t0
    t0 = time.perf_counter()
    await client.execute_workflow(
        BaselineLoop.run, [items, concurrency], id=f"baseline-loop-{uuid.uuid4()}", task_queue=queue
    )
    return round(tempoflow, 2), round(time.perf_counter() - t0, 2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (< 2 minutes)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--items", type=int, help="for-each items (default 2000, quick 300)")
    parser.add_argument(
        "--unsandboxed",
        action="store_true",
        help="run both workflows without the Python workflow sandbox",
    )
    args = parser.parse_args()
    args.runs = args.runs or (100 if args.quick else 400)
    args.items = args.items or (300 if args.quick else 2000)
    result = asyncio.run(main(args))
    print(json.dumps(result))
