"""The executor interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from temporal_workflows.context import RunContext


@dataclass(frozen=True)
class StepOutcome:
    """What the interpreter projects for a finished step."""

    input: Any = None
    output: Any = None
    attempt: int = 1


RunBlock = Callable[[list[Any], str, RunContext], Coroutine[Any, Any, None]]
Executor = Callable[[Any, str, int, RunContext, "Runtime"], Awaitable[StepOutcome]]


class Runtime:
    """What executors may ask of the interpreter: run nested blocks, resume positions,
    continue-as-new checks."""

    def __init__(
        self,
        run_block: RunBlock,
        positions: dict[str, Any],
        should_continue: Callable[[RunContext], bool],
    ) -> None:
        self.run_block = run_block
        self.positions = positions
        self.should_continue = should_continue
        self.blocked = 0
        """>0 while concurrent work runs (parallel branches, concurrent iterations): no
        continue-as-new from inside them."""

    def resume(self, key: str) -> Any:
        """The saved state of a container at ``key`` (once), or ``None``."""
        return self.positions.pop(key, None)


async def run_nested(
    rt: Runtime, key: str, state: dict[str, Any], steps: list[Any], base: str, ctx: RunContext
) -> None:
    """Run a nested block; on continue-as-new, remember ``state`` for this container."""
    from temporal_workflows.failures import ContinueAsNew

    try:
        await rt.run_block(steps, base, ctx)
    except ContinueAsNew as can:
        can.positions[key] = state
        raise
