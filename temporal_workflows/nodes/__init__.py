"""One executor per node type; :data:`EXECUTORS` maps the node ``type`` to it."""

from __future__ import annotations

from temporal_workflows.nodes import (
    action_call,
    control_call_workflow,
    control_for_each,
    control_if,
    control_parallel,
    control_return,
    control_switch,
    control_try_catch,
    delay,
    event_wait,
    human_task,
    state_set,
    transform_assign,
)
from temporal_workflows.nodes.base import Executor, Runtime, StepOutcome

EXECUTORS: dict[str, Executor] = {
    "state.set": state_set.execute,
    "transform.assign": transform_assign.execute,
    "action.call": action_call.execute,
    "control.if": control_if.execute,
    "control.switch": control_switch.execute,
    "control.forEach": control_for_each.execute,
    "control.parallel": control_parallel.execute,
    "control.tryCatch": control_try_catch.execute,
    "control.return": control_return.execute,
    "control.callWorkflow": control_call_workflow.execute,
    "delay": delay.execute,
    "event.wait": event_wait.execute,
    "human.task": human_task.execute,
}

__all__ = ["EXECUTORS", "Executor", "Runtime", "StepOutcome"]
