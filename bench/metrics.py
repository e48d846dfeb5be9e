"""What the metrics cost: Tempoflow runs on a worker whose Temporal client records into
the metered runtime (SDK metrics merged into /metrics, workflow and activity metrics)
vs the same worker on the SDK's default runtime (no metrics); plus the cost of a scrape.

    python bench/metrics.py [--runs N] [--concurrency C]

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

from prometheus_client import REGISTRY, generate_latest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.builtin import default_registry
from activities.telemetry import sdk_metrics
from app.run_starter import start_run
from bench._drive import drive, published
from bench._stack import bench_stack
from bench.interpreter import DEFINITION
from launcher.worker import create_worker
from projections.db import session_factory


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as stack:
        plain: Client = stack.client
        target = plain.service_client.config.target_host
        metered = await Client.connect(
            target, data_converter=pydantic_data_converter, runtime=sdk_metrics().runtime
        )
        sessions = session_factory(stack.engine)
        version = published("bench-metrics", DEFINITION)
        sides = {}
        for name, client in (("plain", plain), ("metered", metered)):
            queue = f"bench-{name}-{uuid.uuid4()}"
            worker = create_worker(
                client, task_queue=queue, registry=default_registry(), sessions=sessions
            )

            async def run(i: int, client: Client = client, queue: str = queue) -> None:
                started = await start_run(
                    client,
                    task_queue=queue,
                    tenant="bench",
                    version=version,
                    data={"n": i},
                    idempotency_key=None,
                )
                await client.get_workflow_handle(started.workflow_id).result()

            sides[name] = (worker, run)
        times = {"plain": 0.0, "metered": 0.0}
        half = args.runs // 2
        for worker, _ in sides.values():
            await worker.__aenter__()
        try:
            for _, run in sides.values():  # warm up
                await drive(max(5, args.runs // 20), args.concurrency, run)
            for _ in range(2):  # alternate halves so neither side gets a warmer server
                for name, (_, run) in sides.items():
                    elapsed, _lat = await drive(half, args.concurrency, run)
                    times[name] += elapsed
        finally:
            for worker, _ in sides.values():
                await worker.__aexit__(None, None, None)
        t0 = time.perf_counter()
        scrapes = 20
        for _ in range(scrapes):
            body = generate_latest(REGISTRY)
        scrape_ms = (time.perf_counter() - t0) * 1000 / scrapes
    total = 2 * half
    plain_rps, metered_rps = total / times["plain"], total / times["metered"]
    return {
        "bench": "metrics",
        "runs": total,
        "concurrency": args.concurrency,
        "plain_runs_per_s": round(plain_rps, 2),
        "metered_runs_per_s": round(metered_rps, 2),
        "throughput_ratio": round(metered_rps / plain_rps, 3),
        "scrape_ms": round(scrape_ms, 2),
        "scrape_bytes": len(body),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
