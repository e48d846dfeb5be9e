"""The action registry: named, versioned actions with pydantic input and output models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from tempoflow.definition import called_actions, parse_definition
from tempoflow.definition.action_options import LOCAL_KEY
from tempoflow.definition.model import ACTION_NAME, RetryPolicy, Timeouts
from tempoflow.errors import TempoflowBaseError

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class ActionError(TempoflowBaseError):
    """A typed failure raised by an action.

    ``retryable=False`` stops Temporal's retries at once; the step fails with ``type``.

    Attributes:
        type: the step's error type (what ``catchOn`` lists); the action's own name.
        message: what went wrong, for a person.
        retryable: whether Temporal retries the attempt under the step's ``retry``.
        details: JSON details the step's error carries.
        next_retry_delay: wait this long before the next attempt instead of the retry
            policy's backoff (e.g. a server's ``Retry-After``); capped by the step's
            ``maxInterval``. Retries still end after ``maxAttempts``.
    """

    def __init__(
        self,
        type: str,
        message: str,
        *,
        retryable: bool = True,
        details: Any = None,
        next_retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.retryable = retryable
        self.details = details
        self.next_retry_delay = next_retry_delay


@dataclass(frozen=True)
class ActionContext:
    """What an action knows about the call besides its input."""

    tenant: str
    run_id: str
    workflow_id: str
    step_path: str
    step_id: str
    attempt: int
    idempotency_key: str
    """The same for every attempt of this step; send it to receivers (e.g. the
    ``Idempotency-Key`` header) so a repeated attempt records one effect."""
    logger: logging.LoggerAdapter[logging.Logger] | logging.Logger
    heartbeat: Callable[..., None] = lambda *details: None
    """Report liveness (with a heartbeat timeout); a cancelled run is seen by heartbeating
    actions as ``asyncio.CancelledError``."""

    @contextlib.asynccontextmanager
    async def heartbeating(self, every: float = 1.0) -> AsyncIterator[None]:
        """Heartbeat every ``every`` seconds while the block waits on something slow (a
        request, a query), so a cancelled run reaches the action within its heartbeat
        throttle (0.8 x the step's ``timeouts.heartbeat``; 30 s without one) and the
        block is cancelled."""

        async def beat() -> None:
            while True:
                self.heartbeat()
                await asyncio.sleep(every)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


Handler = Callable[[In, ActionContext], Awaitable[Out]]


@dataclass(frozen=True)
class ActionSpec(Generic[In, Out]):
    """An action: what ``action.call`` names, declared once for the API and the worker.

    Attributes:
        name: dotted lowercase name (``team.verb``), what ``action.call`` names.
        version: bumped when the input or output changes incompatibly; recorded with
            every invocation.
        input_model: pydantic model of the input (its JSON Schema is checked at publish
            and the model validates every attempt's input).
        output_model: pydantic model of the output.
        handler: ``async (input, ctx) -> output``.
        description: one line for ``GET /v1/actions``.
        side_effects: whether the action changes anything outside the run (``False``:
            repeating it is harmless, e.g. a pure computation or a log line).
        local: run it as a Temporal *local activity* (in the worker running the
            workflow, no activity task round trip, fewer history events): for short
            actions (well under the workflow task timeout) that never heartbeat (a local
            activity has no heartbeat; ``ctx.heartbeat`` does nothing there). Pinned into
            each definition version at publish, so a run schedules its steps the same
            way on every replay; a step with a ``timeouts.heartbeat`` runs as a regular
            activity anyway.
        retry: default retry policy for steps calling it (fields left out fall through
            to the built-in defaults; the definition's and the step's win).
        timeouts: default timeouts, same precedence.
        publish_roles: roles that may publish definitions calling it (``None``: every
            role that may publish; ``admin`` always may).
    """

    name: str
    version: int
    input_model: type[In]
    output_model: type[Out]
    handler: Handler[In, Out]
    description: str = ""
    side_effects: bool = True
    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    publish_roles: frozenset[str] | None = None
    local: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(ACTION_NAME, self.name):
            raise ValueError(
                f"action name {self.name!r} must be dotted lowercase words (e.g. 'acme.send')"
            )
        if not isinstance(self.local, bool):
            raise TypeError(f"action {self.name}: local must be a boolean")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"action {self.name}: version must be a positive integer")
        for model in (self.input_model, self.output_model):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"action {self.name}: {model!r} is not a pydantic model")
        if self.publish_roles is not None:
            object.__setattr__(self, "publish_roles", frozenset(self.publish_roles))

    def declared_defaults(self) -> dict[str, Any]:
        """The retry and timeout fields the action declares (only those it writes), and
        ``"local": true`` for a local action, as JSON: pinned into published versions
        (``RunInput.action_defaults``)."""
        found: dict[str, Any] = {}
        if self.local:
            found[LOCAL_KEY] = True
        if self.retry is not None and self.retry.model_fields_set:
            found["retry"] = self.retry.model_dump(mode="json", exclude_unset=True)
        if self.timeouts is not None and self.timeouts.model_fields_set:
            found["timeouts"] = self.timeouts.model_dump(
                mode="json", exclude_unset=True, exclude_none=True
            )
        return found

    def may_publish(self, roles: frozenset[str]) -> bool:
        """Whether a caller holding ``roles`` may publish a definition calling it."""
        return self.publish_roles is None or "admin" in roles or bool(roles & self.publish_roles)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "sideEffects": self.side_effects,
            "local": self.local,
            "inputSchema": self.input_model.model_json_schema(),
            "outputSchema": self.output_model.model_json_schema(),
            "retry": self.retry.model_dump(mode="json") if self.retry else None,
            "timeouts": self.timeouts.model_dump(mode="json") if self.timeouts else None,
            "publishRoles": sorted(self.publish_roles) if self.publish_roles is not None else None,
        }


class ActionRegistry:
    """Actions known to the API (publish validation) and the worker (execution)."""

    def __init__(self) -> None:
        self._actions: dict[str, ActionSpec[Any, Any]] = {}
        self._input_schemas: dict[str, dict[str, Any]] = {}

    def add(self, spec: ActionSpec[Any, Any]) -> None:
        if spec.name in self._actions:
            raise ValueError(f"action {spec.name!r} is already registered")
        self._actions[spec.name] = spec

    def action(
        self,
        name: str,
        *,
        input_model: type[In],
        output_model: type[Out],
        version: int = 1,
        description: str = "",
        side_effects: bool = True,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        publish_roles: Iterable[str] | None = None,
        local: bool = False,
    ) -> Callable[[Handler[In, Out]], Handler[In, Out]]:
        """Decorator registering ``handler`` as action ``name`` (see :class:`ActionSpec`)."""

        def register(handler: Handler[In, Out]) -> Handler[In, Out]:
            self.add(
                ActionSpec(
                    name,
                    version,
                    input_model,
                    output_model,
                    handler,
                    description,
                    side_effects=side_effects,
                    retry=retry,
                    timeouts=timeouts,
                    publish_roles=frozenset(publish_roles) if publish_roles is not None else None,
                    local=local,
                )
            )
            return handler

        return register

    def pinned_defaults(self, definition: dict[str, Any]) -> dict[str, Any]:
        """What a published version of ``definition`` pins per action it calls: the
        declared retry/timeout defaults and whether the action is local
        (:meth:`ActionSpec.declared_defaults`), so every run of the version schedules
        the same way whatever the registry later declares."""
        found: dict[str, Any] = {}
        for _, name in called_actions(parse_definition(definition)):
            spec = self.get(name)
            declared = spec.declared_defaults() if spec is not None else {}
            if declared:
                found[name] = declared
        return found

    def input_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of every action's input, by name (computed once each)."""
        for name, spec in self._actions.items():
            if name not in self._input_schemas:
                self._input_schemas[name] = spec.input_model.model_json_schema()
        return self._input_schemas

    def get(self, name: str) -> ActionSpec[Any, Any] | None:
        return self._actions.get(name)

    def names(self) -> list[str]:
        return sorted(self._actions)

    def specs(self) -> list[ActionSpec[Any, Any]]:
        return [self._actions[n] for n in self.names()]
