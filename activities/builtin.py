"""Built-in actions: ``core.noop`` and ``core.log``."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from activities.registry import ActionContext, ActionRegistry


class NoopInput(BaseModel):
    """Any fields; they are echoed back."""

    model_config = ConfigDict(extra="allow")


class NoopOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


class LogInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(max_length=10_000)
    level: Literal["debug", "info", "warning", "error"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict)


class LogOutput(BaseModel):
    logged: bool


async def noop(data: NoopInput, ctx: ActionContext) -> NoopOutput:
    return NoopOutput(**(data.model_extra or {}))


async def log(data: LogInput, ctx: ActionContext) -> LogOutput:
    ctx.logger.log(
        logging.getLevelName(data.level.upper()),
        data.message,
        extra={"tempoflow": {"run_id": ctx.run_id, "step": ctx.step_path, **data.fields}},
    )
    return LogOutput(logged=True)


def register_builtins(registry: ActionRegistry) -> ActionRegistry:
    registry.action(
        "core.noop",
        input_model=NoopInput,
        output_model=NoopOutput,
        description="Does nothing; returns its input.",
        side_effects=False,
    )(noop)
    registry.action(
        "core.log",
        input_model=LogInput,
        output_model=LogOutput,
        description="Writes a message to the worker log.",
        side_effects=False,
    )(log)
    return registry


def default_registry() -> ActionRegistry:
    """A registry holding the built-in actions."""
    return register_builtins(ActionRegistry())
