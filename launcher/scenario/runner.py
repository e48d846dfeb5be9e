"""Run scenarios against the real interpreter workflow on Temporal's time-skipping test
server: one server and one in-process worker for all the scenarios of an invocation,
the scenarios one after another (the server's clock is shared)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import ActionRegistry
from launcher.scenario.compare import Difference, show
from launcher.scenario.doubles import Doubles, Recorder
from launcher.scenario.model import Loaded, Scenario, ScenarioFileError
from launcher.scenario.start import ScenarioProblem, start_fields
from launcher.scenario.verdict import actual_steps, check
from launcher.scenario.waiting import not_ended, open_task, run_status
from tempoflow.definition import parse_definition
from tempoflow.definition.model import called_actions, walk_steps
from tempoflow.definition.validation import instance_errors, validate_definition
from tempoflow.ids import workflow_id
from tempoflow.jsonschema_safe import safe_validator
from tempoflow.records import RunStatus
from temporal_workflows.models import (
    COMPLETE_TASK_UPDATE,
    EVENT_SIGNAL,
    WORKFLOW_NAME,
    EventDelivery,
    RunInput,
    TaskCompletion,
)

SETTLE_SECONDS = 5.0
"""Real seconds a scenario expecting an open run waits for it to reach that status."""


@dataclass
class Result:
    file: Path
    name: str
    seconds: float = 0.0
    differences: list[Difference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    actual: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.differences and not self.problems


async def start_server(path: Path) -> WorkflowEnvironment:
    """The time-skipping test server (the binary at ``path``), its SDK core logging only
    errors: a scenario's mocked failures are expected, not worth a warning each."""
    runtime = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )
    return await WorkflowEnvironment.start_time_skipping(
        runtime=runtime,
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(path),
        test_server_startup_timeout=timedelta(seconds=60),
    )


class Session:
    """A time-skipping server's client and a worker with the interpreter and the doubles."""

    def __init__(self, env: WorkflowEnvironment, registry: ActionRegistry | None = None) -> None:
        """``registry``: the actions installed here: calls of them are checked against
        their input models, and their declared retry/timeout defaults apply (as pinned at
        publish). Actions not in it can still be mocked."""
        from launcher.worker import sandboxed_runner
        from temporal_workflows.interpreter import InterpreterWorkflow

        self.env = env
        self.registry = registry
        self.doubles = Doubles(registry)
        self.queue = f"scenarios-{uuid.uuid4()}"
        self.worker = Worker(
            env.client,
            task_queue=self.queue,
            workflows=[InterpreterWorkflow],
            activities=self.doubles.activities(),
            workflow_runner=sandboxed_runner(),
        )
        self._tenants = itertools.count(1)

    async def run_file(self, loaded: Loaded) -> list[Result]:
        issues = [
            f"{i.path}: {i.message}"
            for i in validate_definition(
                loaded.definition,
                input_schemas=self.registry.input_schemas() if self.registry else None,
            )
            if i.severity != "warning"
        ]
        results = []
        for scenario in loaded.spec.scenarios:
            result = Result(loaded.path, scenario.name)
            began = time.monotonic()
            if issues:
                result.problems = [f"the definition {loaded.definition_path.name} is invalid"]
                result.problems += issues
            else:
                try:
                    await self._run(loaded, scenario, result)
                except ScenarioProblem as err:
                    result.problems.append(str(err))
                except ScenarioFileError as err:
                    result.problems += [f"{err.path.name}: {p}" for p in err.problems]
                except RPCError as err:  # e.g. an event sent after the run had ended
                    result.problems.append(f"Temporal refused a request: {err.message}")
            result.seconds = time.monotonic() - began
            results.append(result)
        return results

    async def _run(self, loaded: Loaded, scenario: Scenario, result: Result) -> None:
        tenant = f"scenario-{next(self._tenants)}"
        run_id = str(uuid.uuid4())
        inp = RunInput(
            run_id=run_id,
            tenant=tenant,
            definition_key=loaded.key,
            definition_version=1,
            definition=loaded.definition,
            action_defaults=self._declared_defaults(loaded),
            **start_fields(loaded, scenario),
        )
        schema = loaded.definition.get("inputSchema")
        if isinstance(schema, dict):
            errors = instance_errors(safe_validator(schema), inp.input, "/input")
            if errors:
                raise ScenarioProblem(
                    "the input does not match the definition's inputSchema (the API would "
                    "answer 422): " + "; ".join(f"{e.path}: {e.message}" for e in errors)
                )
        recorder = Recorder(mocks=scenario.mocks, definitions=loaded.definition_path.parent)
        self.doubles.recorders[tenant] = recorder
        handle = await self.env.client.start_workflow(
            WORKFLOW_NAME,
            inp,
            id=workflow_id(tenant, run_id),
            task_queue=self.queue,
        )
        try:
            deadline = time.monotonic() + scenario.timeout
            await self._drive(loaded, scenario, handle, recorder, deadline)
            outcome = await self._outcome(scenario, handle, recorder, run_id, deadline)
            result.actual = outcome
            result.differences = check(scenario.expect, outcome, recorder, run_id)
            for call in recorder.unmocked():
                result.problems.append(
                    f"unmocked call: {call.action} at {call.step_path} (step {call.step_id!r}) "
                    f"with input {show(call.input)}; add it to 'mocks'"
                )
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("scenario over")
            del self.doubles.recorders[tenant]

    def _declared_defaults(self, loaded: Loaded) -> dict[str, Any]:
        """What publishing pins: the called actions' declared retry/timeout defaults."""
        found: dict[str, Any] = {}
        if self.registry is None:
            return found
        for _, name in called_actions(parse_definition(loaded.definition)):
            spec = self.registry.get(name)
            declared = spec.declared_defaults() if spec is not None else {}
            if declared:
                found[name] = declared
        return found

    async def _drive(
        self,
        loaded: Loaded,
        scenario: Scenario,
        handle: WorkflowHandle[Any, Any],
        recorder: Recorder,
        deadline: float,
    ) -> None:
        paths: dict[str, set[str]] = {}
        for path, step, _ in walk_steps(parse_definition(loaded.definition).steps):
            paths.setdefault(step.id, set()).add(path)
        sent = itertools.count(1)
        for index, item in enumerate(scenario.drive):
            where = f"drive/{index}"
            if item.advance is not None:
                await self.env.sleep(item.advance)
            elif item.event is not None:
                delivery = await self._delivery(item.event, next(sent))
                try:
                    await handle.signal(EVENT_SIGNAL, delivery)
                except RPCError as err:
                    raise ScenarioProblem(
                        f"{where}: the event could not be delivered ({err.message}): did the "
                        "run end before it?"
                    ) from None
            elif item.cancel is not None:
                await handle.cancel()
            elif item.completeTask is not None:
                task = item.completeTask
                if task.step not in paths:
                    raise ScenarioProblem(f"{where}: the definition has no step {task.step!r}")
                task_id = await open_task(recorder, paths[task.step], deadline)
                if task_id is None:
                    raise ScenarioProblem(
                        f"{where}: no task of step {task.step!r} opened in time (if the run "
                        "waits on a timer first, put an 'advance' item before this one)"
                    )
                await self._complete(handle, task, task_id, where)

    async def _complete(
        self, handle: WorkflowHandle[Any, Any], task: Any, task_id: str, where: str
    ) -> None:
        completion = TaskCompletion(task_id=task_id, data=task.data, completed_by=task.completedBy)
        try:
            await handle.execute_update(COMPLETE_TASK_UPDATE, completion, result_type=dict)
        except WorkflowUpdateFailedError as err:
            kind = getattr(err.cause, "type", None) or type(err.cause).__name__
            if task.rejected is None or task.rejected != kind:
                raise ScenarioProblem(
                    f"{where}: the completion was refused ({kind}: "
                    f"{getattr(err.cause, 'message', err.cause)})"
                    + (f", expected {task.rejected}" if task.rejected else "")
                ) from None
            return
        if task.rejected is not None:
            raise ScenarioProblem(f"{where}: the completion was accepted, expected {task.rejected}")

    async def _delivery(self, event: Any, seq: int) -> EventDelivery:
        return EventDelivery(
            id=event.id or f"scenario-event-{uuid.uuid4()}",
            name=event.name,
            correlation_key=None if event.correlationKey is None else str(event.correlationKey),
            payload=event.payload,
            occurred_at=None,
            received_at=await self.env.get_current_time(),
            seq=seq,
        )

    async def _outcome(
        self,
        scenario: Scenario,
        handle: WorkflowHandle[Any, Any],
        recorder: Recorder,
        run_id: str,
        deadline: float,
    ) -> dict[str, Any]:
        expected = scenario.expect.status
        outcome: dict[str, Any] = {}
        if expected in ("WAITING", "RUNNING"):
            settle = min(deadline, time.monotonic() + SETTLE_SECONDS)
            await recorder.until(lambda: run_status(recorder, run_id) == expected, settle)
            outcome["status"] = run_status(recorder, run_id)
        else:
            try:
                result = await asyncio.wait_for(
                    handle.result(), timeout=max(deadline - time.monotonic(), 0.1)
                )
                outcome["status"] = RunStatus.SUCCEEDED.value
                outcome["output"] = result.get("output") if isinstance(result, dict) else None
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, CancelledError):
                    outcome["status"] = RunStatus.CANCELED.value
                else:
                    outcome["status"] = RunStatus.FAILED.value
                    detail = (
                        cause.details[0]
                        if isinstance(cause, ApplicationError) and cause.details
                        else None
                    )
                    outcome["error"] = (
                        detail
                        if isinstance(detail, dict)
                        else {"type": getattr(cause, "type", None), "message": str(cause)}
                    )
            except TimeoutError:
                raise ScenarioProblem(await not_ended(scenario, handle, recorder, run_id)) from None
        try:
            state = await handle.query("tempoflow.state", result_type=dict)
            outcome["variables"] = state.get("vars")
        except Exception as err:  # a run whose worker state is gone: report, do not crash
            outcome["variables"] = None
            outcome["queryError"] = str(err)
        outcome["steps"] = actual_steps(recorder, run_id)
        return outcome
