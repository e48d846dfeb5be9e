"""Actions registered only by the tests (the registry is per worker)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.builtin import default_registry
from activities.registry import ActionContext, ActionError, ActionRegistry
from tempoflow.settings import Settings


class Anything(BaseModel):
    model_config = ConfigDict(extra="allow")


class FailInput(BaseModel):
    type: str = "PaymentDeclined"
    message: str = "card declined"
    retryable: bool = False


class FlakyInput(BaseModel):
    failures: int


class Effects:
    """What the test actions did, so tests can assert side effects happened once."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.reached: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.release: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        # A receiver that honours idempotency keys: one effect per key.
        self.received: dict[str, Any] = {}
        self.cancelled: Counter[str] = Counter()
        self.log: dict[str, list[str]] = defaultdict(list)

    def record(self, ctx: ActionContext) -> int:
        self.calls[(ctx.run_id, ctx.step_id)] += 1
        self.keys[(ctx.run_id, ctx.step_id)].add(ctx.idempotency_key)
        return self.calls[(ctx.run_id, ctx.step_id)]


def build_registry(
    effects: Effects,
    *,
    settings: Settings | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> ActionRegistry:
    registry = default_registry(settings=settings, sessions=sessions)

    @registry.action("test.echo", input_model=Anything, output_model=Anything)
    async def echo(data: Anything, ctx: ActionContext) -> Anything:
        effects.record(ctx)
        return Anything(**(data.model_extra or {}), attempt=ctx.attempt)

    @registry.action("test.fail", input_model=FailInput, output_model=Anything)
    async def fail(data: FailInput, ctx: ActionContext) -> Anything:
        effects.record(ctx)
        raise ActionError(data.type, data.message, retryable=data.retryable, details={"x": 1})

    @registry.action("test.flaky", input_model=FlakyInput, output_model=Anything)
    async def flaky(data: FlakyInput, ctx: ActionContext) -> Anything:
        count = effects.record(ctx)
        if count <= data.failures:
            raise ActionError("Transient", f"failure {count}", retryable=True)
        return Anything(succeededOnAttempt=ctx.attempt)

    @registry.action("test.gate", input_model=Anything, output_model=Anything)
    async def gate(data: Anything, ctx: ActionContext) -> Anything:
        """Signals the test that it runs, then waits until the test releases it."""
        effects.record(ctx)
        effects.reached[ctx.run_id].set()
        await effects.release[ctx.run_id].wait()
        return Anything(gated=True)

    @registry.action("test.receive", input_model=Anything, output_model=Anything)
    async def receive(data: Anything, ctx: ActionContext) -> Anything:
        """Sends to a receiver deduplicating by key, then (first attempt, when asked)
        hangs as if the worker died before reporting completion."""
        count = effects.record(ctx)
        effects.received.setdefault(ctx.idempotency_key, data.model_extra)
        if (data.model_extra or {}).get("hang_first") and count == 1:
            effects.reached[ctx.run_id].set()
            await asyncio.Event().wait()
        return Anything(received=len(effects.received))

    async def heartbeat_until_cancelled(ctx: ActionContext) -> None:
        """Record the call, tell the test it started, heartbeat until cancelled."""
        effects.record(ctx)
        effects.reached[ctx.run_id].set()
        while True:
            ctx.heartbeat()
            await asyncio.sleep(0.05)

    @registry.action("test.heartbeat", input_model=Anything, output_model=Anything)
    async def heartbeat(data: Anything, ctx: ActionContext) -> Anything:
        """Heartbeats until cancelled (then records that it saw the cancellation)."""
        try:
            await heartbeat_until_cancelled(ctx)
        except asyncio.CancelledError:
            effects.cancelled[ctx.run_id] += 1
            raise

    @registry.action("test.count", input_model=Anything, output_model=Anything)
    async def count(data: Anything, ctx: ActionContext) -> Anything:
        n = effects.record(ctx)
        return Anything(**(data.model_extra or {}), calls=n)

    @registry.action("test.slowcancel", input_model=Anything, output_model=Anything)
    async def slow_cancel(data: Anything, ctx: ActionContext) -> Anything:
        """Heartbeats until cancelled, then takes half a second to clean up."""
        try:
            await heartbeat_until_cancelled(ctx)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)
            effects.log[ctx.run_id].append("action cleaned up")
            raise

    @registry.action("test.mark", input_model=Anything, output_model=Anything)
    async def mark(data: Anything, ctx: ActionContext) -> Anything:
        effects.record(ctx)
        effects.log[ctx.run_id].append(ctx.step_id)
        return Anything()

    # Local actions (run as Temporal local activities; tests/integration/test_local_actions.py).
    @registry.action(
        "test.localflaky",
        input_model=FlakyInput,
        output_model=Anything,
        side_effects=False,
        local=True,
    )
    async def local_flaky(data: FlakyInput, ctx: ActionContext) -> Anything:
        count = effects.record(ctx)
        if count <= data.failures:
            raise ActionError("Transient", f"failure {count}", retryable=True)
        return Anything(succeededOnAttempt=ctx.attempt, key=ctx.idempotency_key)

    @registry.action("test.localslow", input_model=Anything, output_model=Anything, local=True)
    async def local_slow(data: Anything, ctx: ActionContext) -> Anything:
        """A local action with side effects (it claims its invocation) that sleeps
        ``seconds`` on its first attempt."""
        count = effects.record(ctx)
        if count == 1:
            await asyncio.sleep(float((data.model_extra or {}).get("seconds", 0)))
        ctx.heartbeat()  # does nothing in a local activity (and must not fail)
        return Anything(calls=count)

    return registry
