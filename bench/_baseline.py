"""The hand-written Temporal workflow the interpreter is compared with.

Kept in its own module: the workflow sandbox re-imports the module defining a workflow.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

STEPS = 10


class NoopIn(BaseModel):
    i: int


class NoopOut(BaseModel):
    i: int


@activity.defn(name="bench.noop")
async def baseline_noop(data: NoopIn) -> NoopOut:
    return NoopOut(i=data.i)


@workflow.defn(name="bench.baseline")
class BaselineWorkflow:
    """What a developer would write by hand: ten activities in a row."""

    @workflow.run
    async def run(self, n: int) -> dict[str, int]:
        out = {}
        for i in range(STEPS):
            r = await workflow.execute_activity(
                baseline_noop,
                NoopIn(i=i),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            out[f"r{i}"] = r.i
        return out


@workflow.defn(name="bench.baseline_loop")
class BaselineLoop:
    """A hand-written loop: one activity per item, at most ``concurrency`` at once."""

    @workflow.run
    async def run(self, args: list[int]) -> int:
        items, concurrency = args
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> int:
            async with semaphore:
                r = await workflow.execute_activity(
                    baseline_noop,
                    NoopIn(i=i),
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                return r.i

        results = await asyncio.gather(*(one(i) for i in range(items)))
        return len(results)


@workflow.defn(name="bench.baseline_wait")
class BaselineWait:
    """Waits for one signal and returns the workflow time it resumed at (epoch ms)."""

    def __init__(self) -> None:
        self.event: dict[str, object] | None = None

    @workflow.signal(name="bench.event")
    def receive(self, event: dict[str, object]) -> None:
        self.event = event

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.event is not None)
        return int(workflow.now().timestamp() * 1000)
