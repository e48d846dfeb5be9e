"""One executor per node type; :data:`EXECUTORS` maps the node ``type`` to it."""

from __future__ import annotations

from temporal_workflows.nodes import (
    action_call,
    control_if,
    control_return,
    state_set,
    transform_assign,
)
from temporal_workflows.nodes.base import Executor, RunBlock, StepOutcome

EXECUTORS: dict[str, Executor] = {
    "state.set": state_set.execute,
    "transform.assign": transform_assign.execute,
    "action.call": action_call.execute,
    "control.if": control_if.execute,
    "control.return": control_return.execute,
}

__all__ = ["EXECUTORS", "Executor", "RunBlock", "StepOutcome"]
