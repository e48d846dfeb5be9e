"""The executor interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from projections.records import WaitRecord
from temporal_workflows.context import RunContext
from temporal_workflows.events import Mailbox, TaskBoard
from temporal_workflows.models import EventDelivery


@dataclass(frozen=True)
class StepOutcome:
    """What the interpreter projects for a finished step."""

    input: Any = None
    output: Any = None
    attempt: int = 1


RegisterWait = Callable[[WaitRecord, int], Awaitable[list[EventDelivery]]]
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
        *,
        mailbox: Mailbox | None = None,
        tasks: TaskBoard | None = None,
        register_wait: RegisterWait | None = None,
    ) -> None:
        self.run_block = run_block
        self.mailbox = mailbox or Mailbox()
        self.tasks = tasks or TaskBoard()
        self._register_wait = register_wait
        self.positions = positions
        self.should_continue = should_continue
        self.blocked = 0
        """>0 while concurrent work runs (parallel branches, concurrent iterations): no
        continue-as-new from inside them."""

    async def register_wait(self, wait: WaitRecord, after: int = 0) -> list[EventDelivery]:
        """Index ``wait`` for routing; returns buffered events it may take."""
        assert self._register_wait is not None
        return await self._register_wait(wait, after)

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
