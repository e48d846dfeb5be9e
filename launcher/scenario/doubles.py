"""Stand-ins for the worker's activities while scenarios run: mocked actions, projection
records collected in memory, child definitions read from files. The interpreter workflow
itself is the real one; it cannot tell the difference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.registry import ActionRegistry
from launcher.scenario.compare import diff
from launcher.scenario.model import MockCall, ScenarioFileError, read_json
from tempoflow.error_types import ErrorType
from tempoflow.records import ProjectionBatch, RunRecord, StepRecord, TaskRecord
from tempoflow.secrets import iter_references, substitute
from temporal_workflows.models import (
    NOTIFY_ACTIVITY,
    PROJECT_ACTIVITY,
    REGISTER_WAIT_ACTIVITY,
    RESOLVE_DEFINITION_ACTIVITY,
    ActionFailure,
    ActionInvocation,
    ActionOutcome,
    DefinitionRef,
    DefinitionRequest,
    EventDelivery,
    NotificationReceipt,
    NotificationRequest,
    RegisterWait,
)

UNMOCKED = "ScenarioUnmockedCall"
"""The error type of a call no mock answers (the scenario fails whatever the run does)."""


@dataclass
class Call:
    """One action attempt the run made."""

    action: str
    step_path: str
    step_id: str
    loop: str | None
    input: Any
    attempt: int
    mocked: bool
    ordered: bool = False
    """Answered by an entry without ``when`` (those count the calls in order)."""


@dataclass
class Recorder:
    """What one scenario's runs did (the root run and its children)."""

    mocks: dict[str, MockCall | list[MockCall]]
    definitions: Path
    """Where child definitions live (``<key>.json``)."""
    calls: list[Call] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    notifications: list[NotificationRequest] = field(default_factory=list)
    """The notifications the runs' ``notify`` policies sent (rendered, not delivered)."""

    updated: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever records arrive (waiters clear it)."""

    async def until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``predicate`` holds (checked as records arrive) or ``deadline``
        (``time.monotonic()``) passes; returns whether it holds."""
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.updated.clear()
            try:
                await asyncio.wait_for(self.updated.wait(), left)
            except TimeoutError:
                return predicate()
        return True

    def take(self, batch: ProjectionBatch) -> None:
        self.updated.set()
        if batch.run is not None:
            self.runs.append(batch.run)
        self.steps += batch.steps
        self.tasks += batch.tasks

    def unmocked(self) -> list[Call]:
        return [c for c in self.calls if not c.mocked]

    def answer(self, invocation: ActionInvocation, attempt: int) -> MockCall | None:
        """The first ``when`` entry matching the input, else the next entry in order."""
        mock = self.mocks.get(invocation.action)
        entries = mock if isinstance(mock, list) else [] if mock is None else [mock]
        found = next(
            (
                e
                for e in entries
                if e.when is not None and not diff(e.when, invocation.input, "", partial=True)
            ),
            None,
        )
        sequential = [e for e in entries if e.when is None]
        if found is None and sequential:
            if not isinstance(mock, list):
                found = sequential[0]  # one entry answers every call
            else:
                index = sum(1 for c in self.calls if c.action == invocation.action and c.ordered)
                found = sequential[index] if index < len(sequential) else None
        self.calls.append(
            Call(
                action=invocation.action,
                step_path=invocation.step_path,
                step_id=invocation.step_id,
                loop=invocation.loop,
                input=invocation.input,
                attempt=attempt,
                mocked=found is not None,
                ordered=found is not None and found.when is None,
            )
        )
        return found


class Doubles:
    """The activities of a scenario worker; each scenario's runs use their own tenant,
    which keys its :class:`Recorder`."""

    def __init__(self, registry: ActionRegistry | None = None) -> None:
        self.recorders: dict[str, Recorder] = {}
        self.registry = registry

    def _check_input(self, invocation: ActionInvocation) -> None:
        """Validate the input with the action's model as the real activity does, when the
        action is installed here (``$secret`` references stand in as their names)."""
        spec = self.registry.get(invocation.action) if self.registry is not None else None
        if spec is None:
            return
        names = {name: f"secret:{name}" for _, name in iter_references(invocation.input)}
        try:
            spec.input_model.model_validate(substitute(invocation.input, names))
        except ValidationError as err:
            raise ApplicationError(
                f"invalid input for {invocation.action}: {err.error_count()} error(s)",
                err.errors(include_url=False, include_context=False),
                type=ErrorType.ACTION_INPUT_ERROR,
                non_retryable=True,
            ) from None

    def _recorder(self, tenant: str) -> Recorder:
        recorder = self.recorders.get(tenant)
        if recorder is None:  # a run left over from a scenario that already ended
            raise ApplicationError("no scenario is running", non_retryable=True)
        return recorder

    @activity.defn(dynamic=True)
    async def invoke_action(self, args: Sequence[RawValue]) -> ActionOutcome:
        """Answer an ``action.call`` from the scenario's mocks (by action and call)."""
        invocation = activity.payload_converter().from_payload(args[0].payload, ActionInvocation)
        info = activity.info()
        recorder = self._recorder(invocation.tenant)
        recorder.take(invocation.pending)
        self._check_input(invocation)
        answer = recorder.answer(invocation, info.attempt)
        if answer is None:
            count = sum(1 for c in recorder.calls if c.action == invocation.action)
            raise ApplicationError(
                f"call {count} of {invocation.action} (step {invocation.step_path}) is not "
                "mocked: add it to the scenario's 'mocks'",
                type=UNMOCKED,
                non_retryable=True,
            )
        if answer.error is not None:
            error = answer.error
            raise ApplicationError(
                error.message,
                ActionFailure(attempt=info.attempt, details=error.details).model_dump(mode="json"),
                type=error.type,
                non_retryable=not error.retryable,
            )
        return ActionOutcome(output=answer.output, attempt=info.attempt, action_version=1)

    @activity.defn(name=PROJECT_ACTIVITY)
    async def project(self, batch: ProjectionBatch) -> None:
        tenants = [r.tenant for r in (batch.run, *batch.steps, *batch.tasks, *batch.waits) if r]
        tenant = tenants[0] if tenants else None
        if tenant is not None and tenant in self.recorders:
            self.recorders[tenant].take(batch)

    @activity.defn(name=REGISTER_WAIT_ACTIVITY)
    async def register_wait(self, request: RegisterWait) -> list[EventDelivery]:
        """Events reach the run by signal only: nothing is buffered in a database."""
        recorder = self.recorders.get(request.wait.tenant)
        if recorder is not None:
            recorder.take(request.pending)
        return []

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def notify(self, request: NotificationRequest) -> NotificationReceipt:
        """A ``notify`` policy's notification: recorded, never delivered anywhere."""
        recorder = self.recorders.get(request.tenant)
        if recorder is not None:
            recorder.notifications.append(request)
            recorder.updated.set()
        return NotificationReceipt(status="SENT", attempts=activity.info().attempt)

    @activity.defn(name=RESOLVE_DEFINITION_ACTIVITY)
    async def resolve_definition(self, request: DefinitionRequest) -> DefinitionRef:
        """A child definition: the file ``<key>.json`` beside the scenario's definition
        (every version is that file)."""
        recorder = self._recorder(request.tenant)
        path = recorder.definitions / f"{request.key}.json"
        try:
            body = read_json(path)
        except ScenarioFileError as err:
            raise ApplicationError(
                f"child definition {request.key!r}: {'; '.join(err.problems)} ({path.name})",
                type=ErrorType.DEFINITION_NOT_FOUND,
                non_retryable=True,
            ) from None
        return DefinitionRef(key=request.key, version=request.version or 1, body=body)

    def activities(self) -> list[Any]:
        return [
            self.invoke_action,
            self.project,
            self.register_wait,
            self.notify,
            self.resolve_definition,
        ]
