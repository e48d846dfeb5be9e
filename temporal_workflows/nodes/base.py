"""The executor interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporal_workflows.context import RunContext


@dataclass(frozen=True)
class StepOutcome:
    """What the interpreter projects for a finished step."""

    input: Any = None
    output: Any = None
    attempt: int = 1


RunBlock = Callable[[list[Any], str], Awaitable[None]]
Executor = Callable[[Any, str, int, RunContext, RunBlock], Awaitable[StepOutcome]]
