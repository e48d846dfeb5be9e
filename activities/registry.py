"""The action registry: named, versioned actions with pydantic input and output models."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

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
    """

    def __init__(
        self, type: str, message: str, *, retryable: bool = True, details: Any = None
    ) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.retryable = retryable
        self.details = details


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


Handler = Callable[[In, ActionContext], Awaitable[Out]]


@dataclass(frozen=True)
class ActionSpec(Generic[In, Out]):
    name: str
    version: int
    input_model: type[In]
    output_model: type[Out]
    handler: Handler[In, Out]
    description: str = ""
    side_effects: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "inputSchema": self.input_model.model_json_schema(),
            "outputSchema": self.output_model.model_json_schema(),
        }


class ActionRegistry:
    """Actions known to the API (publish validation) and the worker (execution)."""

    def __init__(self) -> None:
        self._actions: dict[str, ActionSpec[Any, Any]] = {}

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
    ) -> Callable[[Handler[In, Out]], Handler[In, Out]]:
        """Decorator registering ``handler`` as action ``name``."""

        def register(handler: Handler[In, Out]) -> Handler[In, Out]:
            self.add(
                ActionSpec(
                    name, version, input_model, output_model, handler, description, side_effects
                )
            )
            return handler

        return register

    def get(self, name: str) -> ActionSpec[Any, Any] | None:
        return self._actions.get(name)

    def names(self) -> list[str]:
        return sorted(self._actions)

    def specs(self) -> list[ActionSpec[Any, Any]]:
        return [self._actions[n] for n in self.names()]
