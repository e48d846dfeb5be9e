"""The executor interface."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow

from tempoflow.records import WaitRecord
from temporal_workflows.context import RunContext
from temporal_workflows.events import DecisionBoard, Mailbox, TaskBoard
from temporal_workflows.models import EventDelivery

T = TypeVar("T")

PARK_TIMEOUT = timedelta(seconds=5)
"""How long flows parked for continue-as-new wait for the others (a branch in a long
step: an event, a task, a timer, a slow action) before they go on without it."""
RETRY_AFTER = timedelta(minutes=1)
"""After giving up, flows run that long before they try to park again."""


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
    continue-as-new checks.

    Attributes:
        patched: the run started on an interpreter that pauses loops and branches
            anywhere to continue as new (older histories replay the older behaviour).
        blocked: >0 while work must finish within this execution (a ``finally``; before
            ``patched``, also parallel branches and for-each loops).
        draining: continue-as-new is due: every block stops at its next step boundary,
            every loop before its next iteration, and the run unwinds with all positions.
        flows: flows of control that run steps (the run's own, each running parallel
            branch and concurrent iteration; a flow waiting for its branches does not
            count). ``parked`` of them wait at a boundary in :meth:`pause`.
        unwinding: every flow has parked: they raise ``ContinueAsNew`` now, in one
            workflow task (a cancellation cannot arrive halfway).
        before_unwinding: writes pending projections while every flow is still parked;
            returns whether a cancellation arrived meanwhile (then the flow that wrote
            raises it at its boundary, and ``finally`` blocks run as for any cancel).
    """

    def __init__(
        self,
        run_block: RunBlock,
        positions: dict[str, Any],
        should_continue: Callable[[RunContext], bool],
        *,
        mailbox: Mailbox | None = None,
        tasks: TaskBoard | None = None,
        decisions: DecisionBoard | None = None,
        register_wait: RegisterWait | None = None,
        patched: bool = True,
    ) -> None:
        self.run_block = run_block
        self.mailbox = mailbox or Mailbox()
        self.tasks = tasks or TaskBoard()
        self.decisions = decisions or DecisionBoard()
        self._register_wait = register_wait
        self.positions = positions
        self.should_continue = should_continue
        self.patched = patched
        self.blocked = 0
        self.draining = False
        self.flows = 1
        self.parked = 0
        self.unwinding = False
        self.before_unwinding: Callable[[], Awaitable[bool]] | None = None
        self._releasing = False
        self._gave_up = False
        self._retry_at: datetime | None = None

    def continue_due(self, ctx: RunContext) -> bool:
        """At a step or iteration boundary: stop here and continue as new?"""
        if self.blocked:
            return False
        if self._retry_at is not None and workflow.now() < self._retry_at:
            return False
        if self.draining:
            return True
        if self.should_continue(ctx):
            self.draining = self.patched
            return True
        return False

    async def pause(self) -> bool:
        """Park at a boundary until every flow has parked or ended; ``True``: the caller
        raises ``ContinueAsNew`` now. Unwinding only once all flows stand still keeps every
        ``finally`` reachable: a flow that is cancelled, or whose sibling fails, while it
        waits here is cancelled the usual way, its enclosing blocks intact.

        ``False``: some flow stayed in a long step (an event, a task, a timer, a slow
        action) for :data:`PARK_TIMEOUT`; the parked flows go on (a ``waitFor: any`` race
        is never held up) and try again after :data:`RETRY_AFTER`.
        """
        if self.unwinding:
            return True
        self.parked += 1
        leader = self.parked == 1
        try:
            if not self._all_parked():
                ready = lambda: self.unwinding or self._gave_up or self._all_parked()  # noqa: E731
                if leader:  # one timer per attempt, not one per parked flow
                    try:
                        await workflow.wait_condition(ready, timeout=PARK_TIMEOUT.total_seconds())
                    except TimeoutError:
                        self._gave_up, self.draining = True, False
                        self._retry_at = workflow.now() + RETRY_AFTER
                else:
                    await workflow.wait_condition(ready)
            if self.unwinding:
                return True
            if self._gave_up:
                return False
            self._releasing = True
            try:
                if self.before_unwinding is not None and await self.before_unwinding():
                    raise asyncio.CancelledError()
            finally:
                self._releasing = False
            self.unwinding = True
            return True
        finally:
            if leader and not self.unwinding:
                self._gave_up = True  # the others must not wait for a leader that left
            self.parked -= 1
            if self.parked == 0:
                self._gave_up = False

    def _all_parked(self) -> bool:
        return not self._releasing and self.parked >= self.flows

    def spawn(self, operation: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a concurrent flow (a parallel branch, an iteration)."""
        task = asyncio.create_task(operation)
        if self.patched:
            self.flows += 1
            task.add_done_callback(self._flow_ended)
        return task

    def _flow_ended(self, task: asyncio.Task[Any]) -> None:
        self.flows -= 1

    @contextmanager
    def waiting_for_flows(self) -> Iterator[None]:
        """The current flow waits for the flows it spawned (it cannot park meanwhile)."""
        if self.patched:
            self.flows -= 1
        try:
            yield
        finally:
            if self.patched:
                self.flows += 1

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
