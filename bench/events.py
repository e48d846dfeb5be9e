"""Event → run resumption over HTTP vs direct Temporal signals.

N runs wait on distinct correlation keys; their N events are POSTed to the API (real
HTTP to the API in its own process, as deployed) and routed by the dispatcher into
signals. The baseline is a hand-written workflow resumed by N direct ``handle.signal``
calls. Both sides' sends come from a producer process of their own
(bench/_producer.py), as a real producer would; the worker runs in this process.
Latency is from just before the send to the workflow time the run resumed at
(``$millis()`` / ``workflow.now()`` in the task that applied the event); the breakdown
splits it at the inbox commit and at the routing decision.

    python bench/events.py [--quick] [--runs N] [--concurrency C]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.builtin import default_registry
from app.auth import create_api_key
from app.run_starter import start_run
from bench._baseline import BaselineWait
from bench._drive import pct, published
from bench._stack import bench_stack
from launcher import embedded
from launcher.worker import create_worker
from projections.db import session_factory
from projections.models import Event, WaitRow
from tempoflow.settings import Settings

PRODUCER = str(Path(__file__).resolve().parent / "_producer.py")
TENANT = "bench"
EVENT = "bench.done"
DEFINITION = {
    "steps": [
        {
            "id": "wait",
            "type": "event.wait",
            "event": EVENT,
            "correlationKey": "payload.key",
            "output": "event",
        },
        {"id": "resumed", "type": "transform.assign", "assign": {"resumedAt": "$millis()"}},
    ]
}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def spawn_api(
    stack: Any, queue: str
) -> tuple[asyncio.subprocess.Process, int, str, async_sessionmaker[AsyncSession]]:
    """The API in its own process, as deployed (the worker runs in the benchmark's), on
    ``queue``: the process, its port, an admin key of ``TENANT`` and the sessions."""
    sessions = session_factory(stack.engine)
    settings = Settings(environment="test", database_url=stack.database_url, task_queue=queue)
    async with sessions.begin() as session:
        key = await create_api_key(
            session, tenant=TENANT, roles=["admin"], pepper=settings.api_key_pepper
        )
    port = _free_port()
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher.cli",
        "api",
        env={
            **os.environ,
            "TEMPOFLOW_ENVIRONMENT": "test",
            "TEMPOFLOW_DATABASE_URL": stack.database_url,
            "TEMPOFLOW_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
            "TEMPOFLOW_TASK_QUEUE": queue,
            "TEMPOFLOW_API_PORT": str(port),
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return api, port, key, sessions


async def _send_all(count: int, concurrency: int, send) -> tuple[float, dict[int, float]]:  # type: ignore[no-untyped-def]
    """Call ``send(i)`` for every i with ``concurrency`` in flight; returns the elapsed
    seconds and each send's start (epoch ms)."""
    sem = asyncio.Semaphore(concurrency)
    sent: dict[int, float] = {}

    async def one(i: int) -> None:
        async with sem:
            sent[i] = time.time() * 1000
            await send(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - t0, sent


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        api, port, key, sessions = await spawn_api(stack, queue)
        target = client.service_client.config.target_host
        worker = create_worker(
            client,
            task_queue=queue,
            registry=default_registry(),
            sessions=sessions,
            workflows=[BaselineWait],
        )
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=args.concurrency)
        async with (
            worker,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=60
            ) as http,
        ):
            await embedded.wait_for_port("127.0.0.1", port, within=60)
            r = await http.put(
                f"/v1/event-types/{EVENT}", json={"correlation": {"paths": ["/payload/key"]}}
            )
            r.raise_for_status()
            version = published("bench-wait", DEFINITION)
            n = args.runs

            # -- Tempoflow: runs wait on keys; events over HTTP ----------------------------
            started = await asyncio.gather(
                *(
                    start_run(
                        client,
                        task_queue=queue,
                        tenant=TENANT,
                        version=version,
                        data={"key": f"k-{i}"},
                        idempotency_key=None,
                    )
                    for i in range(n)
                )
            )
            await _until_waiting(sessions, n)

            api_proc, me = psutil.Process(api.pid), psutil.Process()
            api_cpu, my_cpu = _cpu(api_proc), _cpu(me)
            produced = await _produce(
                "http", f"http://127.0.0.1:{port}", key, str(n), str(args.concurrency), EVENT
            )
            ingest_s, sent, http_ms = (
                produced["elapsed_s"],
                produced["sent_ms"],
                produced["http_ms"],
            )
            http_retries = produced["retries"]
            results = await asyncio.gather(
                *(client.get_workflow_handle(s.workflow_id).result() for s in started)
            )
            # CPU per event: the API process (ingress, dispatcher: routing and signals) and
            # this one (the worker resuming the runs).
            api_cpu, my_cpu = _cpu(api_proc) - api_cpu, _cpu(me) - my_cpu
            tf_lat = [r["output"]["resumedAt"] - sent[i] for i, r in enumerate(results)]
            # Where the time goes: inbox commit → routing decided → run resumed.
            async with sessions() as session:
                rows = (
                    await session.execute(
                        select(Event.event_id, Event.received_at, Event.routed_at)
                    )
                ).all()
            dispatch_ms = [
                (routed - received).total_seconds() * 1000 for _, received, routed in rows if routed
            ]
            routed_at = {
                event_id: routed.timestamp() * 1000 for event_id, _, routed in rows if routed
            }
            apply_ms = [
                r["output"]["resumedAt"] - routed_at[f"e-{i}"]
                for i, r in enumerate(results)
                if f"e-{i}" in routed_at
            ]

            # -- Baseline: the same resumption by direct signals ---------------------------
            handles = await asyncio.gather(
                *(
                    client.start_workflow(
                        BaselineWait.run, id=f"baseline-{uuid.uuid4()}", task_queue=queue
                    )
                    for _ in range(n)
                )
            )
            await asyncio.sleep(2)  # let every first workflow task finish
            with tempfile.NamedTemporaryFile("w", suffix=".json") as ids:
                json.dump([h.id for h in handles], ids)
                ids.flush()
                produced = await _produce("signal", target, ids.name, str(args.concurrency))
            signal_s, bl_sent = produced["elapsed_s"], produced["sent_ms"]
            resumed = await asyncio.gather(*(h.result() for h in handles))
            bl_lat = [resumed[i] - bl_sent[i] for i in range(n)]

            # -- Ingest only, in batches of 100 (producers that can batch) -----------------
            batches = [list(range(j, min(j + 100, n))) for j in range(0, n, 100)]

            async def post_batch(b: int) -> None:
                events = [
                    {"name": EVENT, "id": f"b-{i}", "payload": {"key": f"none-{i}"}}
                    for i in batches[b]
                ]
                r = await http.post("/v1/events:batch", json={"events": events})
                if r.status_code != 202:
                    raise RuntimeError(r.text)

            batch_s, _ = await _send_all(len(batches), 4, post_batch)
        api.terminate()
        await api.wait()
    p99, bl_p99 = pct(tf_lat, 0.99), pct(bl_lat, 0.99)
    return {
        "bench": "events",
        "runs": n,
        "concurrency": args.concurrency,
        "events_per_s": round(n / ingest_s, 1),
        "batched_events_per_s": round(n / batch_s, 1),
        "signals_per_s": round(n / signal_s, 1),
        "resume_p50_ms": pct(tf_lat, 0.5),
        "resume_p99_ms": p99,
        "baseline_p50_ms": pct(bl_lat, 0.5),
        "baseline_p99_ms": bl_p99,
        "api_cpu_ms_per_event": round(1000 * api_cpu / n, 2),
        "worker_cpu_ms_per_event": round(1000 * my_cpu / n, 2),
        "http_retries": http_retries,
        "http_p50_ms": pct(http_ms, 0.5),
        "http_p99_ms": pct(http_ms, 0.99),
        "inbox_to_routing_p50_ms": pct(dispatch_ms, 0.5),
        "inbox_to_routing_p99_ms": pct(dispatch_ms, 0.99),
        "routing_to_resumed_p50_ms": pct(apply_ms, 0.5),
        "routing_to_resumed_p99_ms": pct(apply_ms, 0.99),
        "resume_p50_ratio": round(pct(tf_lat, 0.5) / max(pct(bl_lat, 0.5), 1.0), 2),
        "resume_p99_ratio": round(p99 / max(bl_p99, 1.0), 2),
    }


async def _produce(*args: str) -> dict[str, Any]:
    """Run the producer (bench/_producer.py) in its own process; its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        PRODUCER,
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the producer failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


async def _until_waiting(sessions, n: int) -> None:  # type: ignore[no-untyped-def]
    """Until every run's wait is indexed (the moment an event can be routed to it)."""
    while True:
        async with sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(WaitRow).where(WaitRow.status == "WAITING")
            )
        if count >= n:
            return
        await asyncio.sleep(0.2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 runs (< 2 minutes)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    args.runs = args.runs or (200 if args.quick else 1000)
    result = asyncio.run(main(args))
    print(json.dumps(result))
