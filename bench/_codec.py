"""The cost of the payload codec (encrypted history) on the interpreter benchmark.

The interpreter workload (runs of 10 sequential ``core.noop`` actions, projections on) on
one stack, twice in the same process: a worker and client without the codec, and a
worker and client with the AES-GCM codec (``TEMPOFLOW_PAYLOAD_KEY``), alternating halves
so neither side gets a warmer server. ``measure_codec_ratio`` returns the figures;
``bench/actions.py`` reports them.

    python bench/_codec.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from activities.builtin import default_registry
from app.run_starter import start_run
from bench._drive import drive, published
from bench._stack import bench_stack
from launcher.worker import create_worker
from projections.db import session_factory
from tempoflow.codec import ENCODING, EncryptionCodec, new_key
from tempoflow.settings import Settings
from tempoflow.temporal_client import data_converter

TENANT = "bench"
STEPS = 10
DEFINITION = {
    "steps": [
        {
            "id": f"s{i}",
            "type": "action.call",
            "action": "core.noop",
            "input": {"i": i, "note": "x" * 200},
            "output": f"r{i}",
        }
        for i in range(STEPS)
    ]
}


async def _codec_cost(payloads: int = 2000) -> tuple[float, float]:
    """Microseconds to encrypt and to decrypt one action-input-sized payload (the CPU the
    codec adds per payload, independent of the server)."""
    codec = EncryptionCodec.from_spec(f"bench:{new_key()}")
    converter = data_converter(Settings()).payload_converter
    batch = converter.to_payloads([{"i": i, "note": "x" * 200} for i in range(payloads)])
    t0 = time.perf_counter()
    sealed = await codec.encode(batch)
    t1 = time.perf_counter()
    await codec.decode(sealed)
    t2 = time.perf_counter()
    return round((t1 - t0) * 1e6 / payloads, 1), round((t2 - t1) * 1e6 / payloads, 1)


def _p50(values: list[float]) -> float:
    return round(sorted(values)[len(values) // 2], 1)


async def measure_codec_ratio(quick: bool, concurrency: int = 50) -> dict[str, object]:
    """Interpreter throughput with the codec over without it, measured in one run."""
    runs = 100 if quick else 400
    async with bench_stack() as stack:
        plain: Client = stack.client
        encrypted = Client(
            plain.service_client,
            namespace=plain.namespace,
            data_converter=data_converter(Settings(payload_key=f"bench:{new_key()}")),
        )
        sessions = session_factory(stack.engine)
        version = published("bench-codec", DEFINITION)
        sides: dict[str, tuple[Client, str]] = {
            "plain": (plain, f"bench-plain-{uuid.uuid4()}"),
            "encrypted": (encrypted, f"bench-enc-{uuid.uuid4()}"),
        }
        workers = [
            create_worker(client, task_queue=queue, registry=default_registry(), sessions=sessions)
            for client, queue in sides.values()
        ]
        last: dict[str, str] = {}

        def starter(side: str) -> Callable[[int], Awaitable[None]]:
            client, queue = sides[side]

            async def one(i: int) -> None:
                started = await start_run(
                    client,
                    task_queue=queue,
                    tenant=TENANT,
                    version=version,
                    data={"n": i},
                    idempotency_key=None,
                )
                await client.get_workflow_handle(started.workflow_id).result()
                last[side] = started.workflow_id

            return one

        elapsed = {side: 0.0 for side in sides}
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        async with workers[0], workers[1]:
            warm = max(5, runs // 20)
            for side in sides:
                await drive(warm, concurrency, starter(side))
            half = runs // 2
            for _ in range(2):
                for side in sides:
                    t, lat = await drive(half, concurrency, starter(side))
                    elapsed[side] += t
                    latencies[side] += lat
        # The encrypted side really stored ciphertext (read without the codec).
        history = await plain.get_workflow_handle(last["encrypted"]).fetch_history()
        started_event = history.events[0].workflow_execution_started_event_attributes
        verified = all(p.metadata.get("encoding") == ENCODING for p in started_event.input.payloads)
    encode_us, decode_us = await _codec_cost()
    total = 2 * half
    plain_rps = total / elapsed["plain"]
    enc_rps = total / elapsed["encrypted"]
    return {
        "codec_runs": total,
        "codec_steps_per_run": STEPS,
        "codec_concurrency": concurrency,
        "codec_plain_runs_per_s": round(plain_rps, 2),
        "codec_encrypted_runs_per_s": round(enc_rps, 2),
        "codec_throughput_ratio": round(enc_rps / plain_rps, 3),
        "codec_plain_p50_ms": _p50(latencies["plain"]),
        "codec_encrypted_p50_ms": _p50(latencies["encrypted"]),
        "codec_history_encrypted": verified,
        "codec_encode_us_per_payload": encode_us,
        "codec_decode_us_per_payload": decode_us,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure_codec_ratio(args.quick, args.concurrency))))
