"""The cost curve: runs/s at 1, 10, 50 and 200 concurrent runs, Tempoflow (the 10-step
``core.noop`` definition of ``interpreter.py``, projections on) vs the hand-written
workflow running the same 10 activities, so the knee of each curve is visible.

At each level both sides run the same number of runs (``4 x concurrency``, at least 20;
``--quick``: ``2 x``, at least 10), alternating sides level by level, on one worker. The
chart (``bench/curve.png``, or ``--chart PATH``) is drawn with matplotlib (the ``bench``
extra: ``pip install -e '.[bench]'``); without it, only the JSON is printed.

    python bench/curve.py [--quick] [--levels 1,10,50,200] [--chart PATH]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from activities.builtin import default_registry
from bench._baseline import STEPS, BaselineWorkflow, baseline_noop
from bench._drive import drive, published, run_to_end
from bench._stack import bench_stack
from bench.interpreter import DEFINITION, TENANT
from launcher.worker import create_worker
from projections.db import session_factory

CHART = Path(__file__).resolve().parent / "curve.png"


async def main(args: argparse.Namespace) -> dict[str, object]:
    levels = [int(c) for c in args.levels.split(",")]
    points: dict[str, list[float]] = {"tempoflow": [], "baseline": []}
    async with bench_stack() as stack:
        client: Client = stack.client
        queue = f"bench-{uuid.uuid4()}"
        worker = create_worker(
            client,
            task_queue=queue,
            registry=default_registry(),
            sessions=session_factory(stack.engine),
            workflows=[BaselineWorkflow],
            activities=[baseline_noop],
        )
        version = published("bench-curve", DEFINITION)

        async def tempoflow(i: int) -> None:
            await run_to_end(client, queue, TENANT, version, {"n": i})

        async def baseline(i: int) -> None:
            await client.execute_workflow(
                BaselineWorkflow.run, i, id=f"baseline-{uuid.uuid4()}", task_queue=queue
            )

        async with worker:
            await drive(10, 10, tempoflow)
            await drive(10, 10, baseline)
            for concurrency in levels:
                runs = max(10, 2 * concurrency) if args.quick else max(20, 4 * concurrency)
                for name, side in (("tempoflow", tempoflow), ("baseline", baseline)):
                    elapsed, _ = await drive(runs, concurrency, side)
                    points[name].append(round(runs / elapsed, 2))
                print(
                    f"concurrency {concurrency}: tempoflow {points['tempoflow'][-1]} runs/s, "
                    f"baseline {points['baseline'][-1]} runs/s",
                    flush=True,
                )
    chart = _chart(levels, points, Path(args.chart)) if not args.no_chart else None
    return {
        "bench": "curve",
        "steps_per_run": STEPS,
        "concurrency": levels,
        "tempoflow_runs_per_s": points["tempoflow"],
        "baseline_runs_per_s": points["baseline"],
        "ratio": [
            round(t / b, 2) for t, b in zip(points["tempoflow"], points["baseline"], strict=True)
        ],
        "chart": chart,
    }


def _chart(levels: list[int], points: dict[str, list[float]], path: Path) -> str | None:
    """Draw runs/s against concurrency (log scale) for both sides; the file's name."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart", flush=True)
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(levels, points["tempoflow"], marker="o", label="Tempoflow (projections on)")
    ax.plot(levels, points["baseline"], marker="s", label="hand-written Temporal workflow")
    ax.set_xscale("log")
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrent runs")
    ax.set_ylabel(f"runs/s ({STEPS} no-op steps each)")
    ax.set_title("Throughput by concurrency (one worker, two cores)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per level")
    parser.add_argument("--levels", default="1,10,50,200", help="concurrency levels")
    parser.add_argument("--chart", default=str(CHART), help="where to write the PNG")
    parser.add_argument("--no-chart", action="store_true", help="print the figures only")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    print(json.dumps(result))
