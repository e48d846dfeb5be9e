"""The executor interface."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio import workflow

from projections.records import WaitRecord
from temporal_workflows.context import RunContext
from temporal_workflows.events import Mailbox, TaskBoard
from temporal_workflows.models import EventDelivery

T = TypeVar("T")


@dataclass(frozen=True)
class StepOutcome:
    """What the interpreter projects for a finished step."""

    input: Any = None
    output: Any = None
    attempt: int = 1


RegisterWait = Callable[[WaitRecord], Awaitable[list[EventDelivery]]]
RunBlock = Callable[[list[Any], str, RunContext], Coroutine[Any, Any, None]]
Executor = Callable[[Any, str, int, RunContext, "Runtime"], Awaitable[StepOutcome]]


class Runtime:
    """What executors may ask of the interpreter: run nested blocks, resume positions,
    continue-as-new checks.

    Attributes:
        patched: the run started on an interpreter that pauses loops and branches
            anywhere to continue as new (older histories replay the older behaviour).
        blocked: >0 while work must finish within this execution (a ``finally``; before
            ``patched``, also parallel branches and for-each loops).
        draining: continue-as-new is due: every block stops at its next step boundary,
            every loop before its next iteration, and the run unwinds with all positions.
    """

    def __init__(
        self,
        run_block: RunBlock,
        positions: dict[str, Any],
        should_continue: Callable[[RunContext], bool],
        *,
        mailbox: Mailbox | None = None,
        tasks: TaskBoard | None = None,
        register_wait: RegisterWait | None = None,
        patched: bool = True,
    ) -> None:
        self.run_block = run_block
        self.mailbox = mailbox or Mailbox()
        self.tasks = tasks or TaskBoard()
        self._register_wait = register_wait
        self.positions = positions
        self.should_continue = should_continue
        self.patched = patched
        self.blocked = 0
        self.draining = False

    def continue_due(self, ctx: RunContext) -> bool:
        """At a step or iteration boundary: stop here and continue as new?"""
        if self.blocked:
            return False
        if self.draining:
            return True
        if self.should_continue(ctx):
            self.draining = self.patched
            return True
        return False

    async def register_wait(self, wait: WaitRecord) -> list[EventDelivery]:
        """Index ``wait`` for routing; returns buffered events it may take."""
        assert self._register_wait is not None
        return await self._register_wait(wait)

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


async def to_completion(operation: Coroutine[Any, Any, T]) -> tuple[asyncio.Task[T], bool]:
    """Run ``operation`` to its end even when the caller is cancelled meanwhile.

    A cancellation of the caller is passed on to the operation once (an activity or child
    workflow then gets its cancel request, and Temporal's cancellation type decides when
    it ends); the operation is awaited either way. Returns the finished task (its
    ``result()`` raises what the operation raised) and whether the caller was cancelled,
    so the caller can end as cancelled even when the operation completed regardless.
    """
    return await _await_task(asyncio.create_task(operation), forward=True)


async def shielded(operation: Coroutine[Any, Any, T]) -> tuple[T, bool]:
    """Run ``operation`` to its end without passing a cancellation of the caller on
    (closing projection writes); returns its result and whether the caller was cancelled."""
    task, cancelled = await _await_task(asyncio.create_task(operation), forward=False)
    return task.result(), cancelled


async def _await_task(task: asyncio.Task[T], *, forward: bool) -> tuple[asyncio.Task[T], bool]:
    cancelled = False
    while not task.done():
        try:
            await workflow.wait([task])
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # handled here: later awaits must not re-raise it
            if cancelled:
                continue
            cancelled = True
            if forward:
                task.cancel()
    return task, cancelled
