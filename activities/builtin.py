"""Built-in actions: ``core.noop``, ``core.log`` and the ones in their own modules
(``http.request``, ``webhook.send``, ``email.send``)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.egress import AllowLists
from activities.email import register_email
from activities.http import HttpActions, register_http
from activities.registry import ActionContext, ActionRegistry
from activities.webhook import register_webhook
from tempoflow.settings import Settings


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
        # ``fields`` become the run-log line's fields (activities/runlogs.py).
        extra={"fields": data.fields, "run_id": ctx.run_id, "step": ctx.step_path},
    )
    return LogOutput(logged=True)


def register_builtins(
    registry: ActionRegistry,
    *,
    settings: Settings | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> ActionRegistry:
    """Register the built-in actions. The HTTP actions read tenants' egress allow-lists
    through ``sessions``; without them (a registry that only describes actions, e.g. the
    API's) every allow-list is empty."""
    registry.action(
        "core.noop",
        input_model=NoopInput,
        output_model=NoopOutput,
        description="Does nothing; returns its input.",
        side_effects=False,
        local=True,
    )(noop)
    registry.action(
        "core.log",
        input_model=LogInput,
        output_model=LogOutput,
        description="Writes a message to the worker log.",
        side_effects=False,
        local=True,
    )(log)
    settings = settings or Settings()
    allow_lists = AllowLists(sessions, settings.egress_rules_cache_seconds)
    register_email(registry, allow_lists=allow_lists)
    http = HttpActions(settings, allow_lists)
    register_http(registry, http)
    register_webhook(registry, http)
    return registry


def default_registry(
    *,
    settings: Settings | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> ActionRegistry:
    """A registry holding the built-in actions."""
    return register_builtins(ActionRegistry(), settings=settings, sessions=sessions)


async def close_resources(registry: ActionRegistry) -> None:
    """Close what the registry's actions hold for the worker (e.g. the HTTP client): the
    ``aclose()`` of every object whose bound method is a handler, once each."""
    seen: set[int] = set()
    for spec in registry.specs():
        owner = getattr(spec.handler, "__self__", None)
        close = getattr(owner, "aclose", None)
        if owner is None or close is None or id(owner) in seen:
            continue
        seen.add(id(owner))
        await close()
