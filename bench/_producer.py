"""The producer side of ``bench/events.py``, in its own process as a real producer would
be: sends N events over HTTP or N Temporal signals, ``concurrency`` in flight, and prints
one JSON line: each send's start (epoch ms), the elapsed seconds and HTTP latencies.

    python bench/_producer.py http URL API_KEY COUNT CONCURRENCY EVENT
    python bench/_producer.py signal ADDRESS IDS_FILE CONCURRENCY
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.client import Client


async def send_all(
    count: int, concurrency: int, send: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    sent = [0.0] * count

    async def one(i: int) -> None:
        async with sem:
            sent[i] = time.time() * 1000
            await send(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - t0, sent


async def http_events(url: str, key: str, count: int, concurrency: int, event: str) -> dict:
    """``concurrency`` keep-alive connections, each its own httpx client: one client's
    pool shared by 50 requests in flight spends more CPU managing the pool than the API
    spends on an event (~350 requests/s at most here against an endpoint that does
    nothing, 1,100 with a client per connection). ``BENCH_HTTP_POOLED=1`` measures the
    single pooled client instead."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    pooled = os.environ.get("BENCH_HTTP_POOLED") == "1"
    async with contextlib.AsyncExitStack() as stack:
        clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for _ in range(1 if pooled else concurrency):
            limits = httpx.Limits(max_connections=concurrency if pooled else 1)
            clients.put_nowait(
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60)
                )
            )

        async def post(i: int) -> None:
            nonlocal retries
            http = await clients.get()
            if pooled:
                clients.put_nowait(http)
            t0 = time.perf_counter()
            body = {"name": event, "id": f"e-{i}", "payload": {"key": f"k-{i}"}}
            try:
                for attempt in range(4):
                    try:
                        r = await http.post("/v1/events", json=body)
                        break
                    except httpx.TransportError:  # the event id makes a retry safe
                        if attempt == 3:
                            raise
                        retries += 1
            finally:
                if not pooled:
                    clients.put_nowait(http)
            if r.status_code not in (200, 202):
                raise RuntimeError(r.text)
            latencies.append((time.perf_counter() - t0) * 1000)

        retries = 0
        elapsed, sent = await send_all(count, concurrency, post)
    return {"elapsed_s": elapsed, "sent_ms": sent, "http_ms": latencies, "retries": retries}


async def signals(address: str, ids: list[str], concurrency: int) -> dict:
    client = await Client.connect(address)

    async def signal(i: int) -> None:
        await client.get_workflow_handle(ids[i]).signal("bench.event", {"key": i})

    elapsed, sent = await send_all(len(ids), concurrency, signal)
    return {"elapsed_s": elapsed, "sent_ms": sent}


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "http":
        url, key, count, concurrency, event = rest
        result = asyncio.run(http_events(url, key, int(count), int(concurrency), event))
    else:
        address, ids_file, concurrency = rest
        ids = json.loads(Path(ids_file).read_text())
        result = asyncio.run(signals(address, ids, int(concurrency)))
    print(json.dumps(result), flush=True)
    # The Temporal client's runtime threads can abort a normal interpreter exit
    # (sdk-python#300); the result is out, so leave at once.
    os._exit(0)
