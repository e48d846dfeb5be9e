"""``transform.assign``: assign JSONata results to variables."""

from __future__ import annotations

from tempoflow.definition import TransformAssign
from tempoflow.definition.model import escape
from temporal_workflows.context import RunContext
from temporal_workflows.nodes.base import Runtime, StepOutcome


async def execute(
    step: TransformAssign, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    # Evaluate every expression against the same state, then assign: the order of the
    # keys in ``assign`` does not change the result.
    values = {
        target: ctx.evaluate(expr, f"{path}/assign/{escape(target)}")
        for target, expr in step.assign.items()
    }
    for target, value in values.items():
        ctx.set_var(target, value)
    return StepOutcome(output=values)
