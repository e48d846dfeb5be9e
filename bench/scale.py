"""Scale: N runs (2,000; ``--quick`` 300) parked on ``event.wait`` at once, then one
event each over HTTP.

The runs are started (50 starts in flight) and parked on distinct correlation keys; then
a producer in its own process POSTs one event per run to the API (its own process, 50
requests in flight) and the dispatcher routes them. Reports how long parking took, the
events accepted and routed per second, the time from the first send until every run has
resumed, and the resident memory (RSS) of the worker (this process) and of the API
process: at rest, with every run parked, and the peak while the events went through.

    python bench/scale.py [--quick] [--runs N] [--concurrency C]

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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from sqlalchemy import func, select
from temporalio.client import Client

from activities.builtin import default_registry
from app.run_starter import start_run
from bench._drive import drive, pct, published
from bench._stack import bench_stack
from bench.events import DEFINITION, EVENT, TENANT, _produce, _until_waiting, spawn_api
from launcher import embedded
from launcher.worker import create_worker
from projections.models import Event

_RESULTS = asyncio.Semaphore(100)


async def _result(client: Client, workflow_id: str) -> Any:
    async with _RESULTS:
        return await client.get_workflow_handle(workflow_id).result()


def _rss_mb(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 2**20, 1)


class PeakRss:
    """Samples the RSS of some processes every 0.2 s; keeps the highest of each."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.peak = {name: 0.0 for name in procs}
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for name, proc in self.procs.items():
                self.peak[name] = max(self.peak[name], _rss_mb(proc))
            await asyncio.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        api, port, key, sessions = await spawn_api(stack, queue)
        try:  # the API process must not outlive a failed run
            worker = create_worker(
                client, task_queue=queue, registry=default_registry(), sessions=sessions
            )
            headers = {"Authorization": f"Bearer {key}"}
            n = args.runs
            async with (
                worker,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as http,
            ):
                await embedded.wait_for_port("127.0.0.1", port, within=60)
                r = await http.put(
                    f"/v1/event-types/{EVENT}", json={"correlation": {"paths": ["/payload/key"]}}
                )
                r.raise_for_status()
                procs = {"worker": psutil.Process(), "api": psutil.Process(api.pid)}
                rest = {name: _rss_mb(p) for name, p in procs.items()}
                version = published("bench-scale", DEFINITION)
                workflow_ids: dict[int, str] = {}

                async def start(i: int) -> None:
                    started = await start_run(
                        client,
                        task_queue=queue,
                        tenant=TENANT,
                        version=version,
                        data={"key": f"k-{i}"},
                        idempotency_key=None,
                    )
                    workflow_ids[i] = started.workflow_id

                with PeakRss(procs) as parking:
                    t0 = time.perf_counter()
                    start_s, _ = await drive(n, args.concurrency, start)
                    await _until_waiting(sessions, n)
                    park_s = time.perf_counter() - t0
                parked = {name: _rss_mb(p) for name, p in procs.items()}

                with PeakRss(procs) as resuming:
                    first_send = time.time() * 1000
                    produced = await _produce(
                        "http",
                        f"http://127.0.0.1:{port}",
                        key,
                        str(n),
                        str(args.concurrency),
                        EVENT,
                    )
                    # Results read 100 at a time: 2,000 history long-polls at once exceed
                    # the server's concurrent poller limit (resumption is timed in the runs).
                    results = await asyncio.gather(
                        *(_result(client, workflow_ids[i]) for i in range(n))
                    )
                resumed_at = [r["output"]["resumedAt"] for r in results]
                async with sessions() as session:
                    routed = await session.scalar(
                        select(func.max(Event.routed_at)).where(Event.routed_at.is_not(None))
                    )
                    routed_count = await session.scalar(
                        select(func.count()).select_from(Event).where(Event.routed_at.is_not(None))
                    )
        finally:
            api.terminate()
            await api.wait()
    assert routed is not None
    routed_s = (routed.timestamp() * 1000 - first_send) / 1000
    all_resumed_s = (max(resumed_at) - first_send) / 1000
    lat = [resumed_at[i] - produced["sent_ms"][i] for i in range(n)]
    return {
        "bench": "scale",
        "runs": n,
        "concurrency": args.concurrency,
        "starts_per_s": round(n / start_s, 1),
        "park_all_s": round(park_s, 1),
        "events_accepted_per_s": round(n / produced["elapsed_s"], 1),
        "events_routed_per_s": round(routed_count / routed_s, 1),
        "events_routed": routed_count,
        "all_resumed_s": round(all_resumed_s, 1),
        "resume_p50_ms": pct(lat, 0.5),
        "resume_p99_ms": pct(lat, 0.99),
        "http_p99_ms": pct(produced["http_ms"], 0.99),
        "worker_rss_mb_at_rest": rest["worker"],
        "worker_rss_mb_parked": parked["worker"],
        "worker_rss_mb_peak": max(parking.peak["worker"], resuming.peak["worker"]),
        "api_rss_mb_at_rest": rest["api"],
        "api_rss_mb_parked": parked["api"],
        "api_rss_mb_peak": max(parking.peak["api"], resuming.peak["api"]),
        "worker_kb_per_parked_run": round(1024 * (parked["worker"] - rest["worker"]) / n, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 runs (< 2 minutes)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    args.runs = args.runs or (300 if args.quick else 2000)
    result = asyncio.run(main(args))
    print(json.dumps(result))
