"""``state.set``: set variables to (resolved) values."""

from __future__ import annotations

from tempoflow.definition import StateSet
from tempoflow.definition.model import escape
from temporal_workflows.context import RunContext
from temporal_workflows.nodes.base import Runtime, StepOutcome


async def execute(step: StateSet, path: str, seq: int, ctx: RunContext, rt: Runtime) -> StepOutcome:
    values = {
        target: ctx.resolve(value, f"{path}/values/{escape(target)}")
        for target, value in step.values.items()
    }
    for target, value in values.items():
        ctx.set_var(target, value)
    return StepOutcome(output=values)
