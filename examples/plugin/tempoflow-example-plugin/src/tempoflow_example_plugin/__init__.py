"""A minimal Tempoflow action plugin (docs/actions.md walks through it).

``register(registry)`` is the whole contract: Tempoflow calls it with its action registry
in the API (publish checks, ``GET /v1/actions``) and in the worker (execution).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from activities.registry import ActionContext, ActionError, ActionRegistry
from tempoflow.definition.model import RetryPolicy, Timeouts

__all__ = ["greet", "record", "register"]

OUTBOX_ENV = "TEMPOFLOW_EXAMPLE_OUTBOX"
"""Directory where ``example.record`` appends its records (one JSON line each)."""


class GreetInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    punctuation: str = Field(default="!", max_length=3)


class GreetOutput(BaseModel):
    greeting: str


async def greet(data: GreetInput, ctx: ActionContext) -> GreetOutput:
    """No side effect: the same input always gives the same output."""
    return GreetOutput(greeting=f"Hello, {data.name}{data.punctuation}")


class RecordInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ledger: str = Field(pattern=r"^[a-z0-9-]{1,40}$", description="file name in the outbox")
    amount: int = Field(ge=0, le=1_000_000)
    note: str = Field(default="", max_length=500)


class RecordOutput(BaseModel):
    recorded: bool
    duplicate: bool
    """An earlier attempt of this step already wrote it (same idempotency key)."""


async def record(data: RecordInput, ctx: ActionContext) -> RecordOutput:
    """A side effect made safe to retry: the step's idempotency key is stored with the
    record, and a record whose key is already there is not written again."""
    outbox = os.environ.get(OUTBOX_ENV)
    if not outbox:
        # A configuration error: retrying does not help.
        raise ActionError("ExampleNotConfigured", f"{OUTBOX_ENV} is not set", retryable=False)
    path = Path(outbox) / f"{data.ledger}.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if json.loads(line)["key"] == ctx.idempotency_key:
                return RecordOutput(recorded=True, duplicate=True)
    with path.open("a") as out:
        out.write(json.dumps({"key": ctx.idempotency_key, **data.model_dump()}) + "\n")
    return RecordOutput(recorded=True, duplicate=False)


def register(registry: ActionRegistry) -> None:
    """Add this plugin's actions to ``registry`` (the entry point names this function)."""
    registry.action(
        "example.greet",
        input_model=GreetInput,
        output_model=GreetOutput,
        description="Greets someone (no side effects).",
        side_effects=False,
        retry=RetryPolicy(maxAttempts=2),
        timeouts=Timeouts(startToClose=timedelta(seconds=10)),
    )(greet)
    registry.action(
        "example.record",
        input_model=RecordInput,
        output_model=RecordOutput,
        description="Appends a record to a ledger file, once per step.",
        retry=RetryPolicy(maxAttempts=5, initialInterval=timedelta(milliseconds=200)),
        timeouts=Timeouts(startToClose=timedelta(seconds=30)),
    )(record)
