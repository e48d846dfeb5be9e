"""``http.request`` vs hand-written activities making the same httpx calls: N runs of 10
sequential POSTs to a local receiver.

Both run on the same server, in the same worker (same runner, same limits), in the same
process; the receiver runs in a process of its own on 127.0.0.1. Tempoflow's requests go
through everything a production one does: the egress policy (127.0.0.1 is allow-listed
for the benchmark's tenant in its egress rules, as an admin would with
``PUT /v1/egress-rules``), the pinned connection, the size cap, the invocation
bookkeeping and projections. The baseline posts with a plain ``httpx.AsyncClient``.

    python bench/actions.py [--quick] [--runs N] [--concurrency C]

When ``bench/_codec.py`` is present, its ``measure_codec_ratio(quick)`` figures (the cost of
the payload codec on the interpreter benchmark) are added under ``codec``. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from activities.builtin import close_resources, default_registry
from bench._drive import compared, drive, published, run_to_end
from bench._http_baseline import STEPS, BaselineHttp, HttpBaselineWorkflow
from bench._stack import bench_stack
from launcher.worker import create_worker
from projections.db import session_factory
from projections.egress import put_allow_list
from projections.models import RunRow
from tempoflow.settings import Settings

TENANT = "bench"
HOST = "127.0.0.1"


def definition(url: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": f"s{i}",
                "type": "action.call",
                "action": "http.request",
                "input": {"method": "POST", "url": url, "json": {"i": i}},
                "output": f"r{i}",
            }
            for i in range(STEPS)
        ]
    }


def start_receiver() -> tuple[subprocess.Popen[bytes], int]:
    """The receiver in its own process, on a socket opened here (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: the receiver's header and body writes would otherwise
    # wait for the client's delayed ACK (~40 ms per request on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._receiver", "--fd", str(sock.fileno())],
        pass_fds=[sock.fileno()],
        cwd=Path(__file__).resolve().parent.parent,
    )
    sock.close()
    return proc, port


async def received(port: int) -> int:
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(100):
            try:
                r = await client.get(f"http://{HOST}:{port}/count")
                return int(r.json()["received"])
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError("the receiver did not start")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    proc, port = start_receiver()
    try:
        await received(port)  # up and answering
        return await measure(args, port)
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(args: argparse.Namespace, port: int) -> dict[str, Any]:
    url = f"http://{HOST}:{port}/item"
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        sessions = session_factory(stack.engine)
        async with sessions.begin() as session:
            await put_allow_list(session, TENANT, [HOST])
        registry = default_registry(settings=Settings(), sessions=sessions)
        baseline_http = BaselineHttp()
        worker = create_worker(
            client,
            task_queue=queue,
            registry=registry,
            sessions=sessions,
            workflows=[HttpBaselineWorkflow],
            activities=[baseline_http.call],
        )
        version = published("bench-http", definition(url), registry)

        async def tempoflow(i: int) -> None:
            await run_to_end(client, queue, TENANT, version, {"n": i})

        async def baseline(i: int) -> None:
            await client.execute_workflow(
                HttpBaselineWorkflow.run, url, id=f"baseline-{uuid.uuid4()}", task_queue=queue
            )

        try:
            async with worker:
                warm = max(5, args.runs // 20)
                await drive(warm, args.concurrency, tempoflow)
                await drive(warm, args.concurrency, baseline)
                # Alternate halves so neither side gets a warmer server.
                half = args.runs // 2
                tf_time = bl_time = 0.0
                tf_lat: list[float] = []
                bl_lat: list[float] = []
                for _ in range(2):
                    t, lat = await drive(half, args.concurrency, tempoflow)
                    tf_time, tf_lat = tf_time + t, tf_lat + lat
                    t, lat = await drive(half, args.concurrency, baseline)
                    bl_time, bl_lat = bl_time + t, bl_lat + lat
        finally:
            await close_resources(registry)
            await baseline_http.client.aclose()
        async with sessions() as session:
            closed = await session.scalar(
                select(func.count())
                .select_from(RunRow)
                .where(RunRow.status == "SUCCEEDED", RunRow.definition_key == "bench-http")
            )
    total = 2 * half
    requests = await received(port)
    return {
        "bench": "actions",
        "runs": total,
        "steps_per_run": STEPS,
        "concurrency": args.concurrency,
        **compared(total, tf_time, bl_time, tf_lat, bl_lat),
        "projected_runs": closed,
        "requests_received": requests,
        "requests_complete": requests == 2 * (total + warm) * STEPS,
    }


def codec_figures(quick: bool) -> dict[str, Any] | None:
    """The payload codec's cost, when ``bench/_codec.py`` provides it."""
    if importlib.util.find_spec("bench._codec") is None:
        return None
    from bench import _codec  # type: ignore[attr-defined, unused-ignore]

    figures = _codec.measure_codec_ratio(quick)
    if inspect.isawaitable(figures):
        figures = asyncio.run(figures)  # type: ignore[arg-type, unused-ignore]
    return dict(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (< 2 minutes)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    args.runs = args.runs or (100 if args.quick else 400)
    result = asyncio.run(main(args))
    codec = codec_figures(args.quick)
    if codec is not None:
        result["codec"] = codec
    print(json.dumps(result))
