"""What the runner waits for and what it says when waiting ends without it."""

from __future__ import annotations

import contextlib
from typing import Any

from temporalio.client import WorkflowHandle

from launcher.scenario.doubles import Recorder
from launcher.scenario.model import Scenario
from tempoflow.records import RunStatus, TaskStatus


async def not_ended(
    scenario: Scenario, handle: WorkflowHandle[Any, Any], recorder: Recorder, run_id: str
) -> str:
    message = (
        f"the run did not end within {scenario.timeout:g} s (it is {run_status(recorder, run_id)}"
    )
    events: list[Any] = []
    with contextlib.suppress(Exception):
        events = list((await handle.fetch_history()).events)
    if events and events[-1].HasField("workflow_task_started_event_attributes"):
        return message + (
            "; its last workflow task never completed: the test server refuses a task that "
            "cancels an action which has just finished, see docs/testing.md, Limits)"
        )
    return message + (
        "; a wait without a timeout needs its event, task or 'cancel' in 'drive', or expect "
        "status WAITING)"
    )


def run_status(recorder: Recorder, run_id: str) -> str:
    runs = [r for r in recorder.runs if r.run_id == run_id]
    return runs[-1].status.value if runs else RunStatus.RUNNING.value


async def open_task(recorder: Recorder, paths: set[str], deadline: float) -> str | None:
    """The id of the first open (projected, not yet closed) task of a step at ``paths``."""

    def find() -> str | None:
        closed = {t.id for t in recorder.tasks if t.status != TaskStatus.OPEN}
        return next(
            (
                t.id
                for t in recorder.tasks
                if t.step_path in paths and t.status == TaskStatus.OPEN and t.id not in closed
            ),
            None,
        )

    await recorder.until(lambda: find() is not None, deadline)
    return find()
