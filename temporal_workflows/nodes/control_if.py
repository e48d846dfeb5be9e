"""``control.if``: run ``then`` or ``else``."""

from __future__ import annotations

from expression import truthy
from tempoflow.definition import ControlIf
from temporal_workflows.context import RunContext
from temporal_workflows.nodes.base import RunBlock, StepOutcome


async def execute(
    step: ControlIf, path: str, seq: int, ctx: RunContext, run_block: RunBlock
) -> StepOutcome:
    # JSONata truthiness ($boolean): empty string, 0, empty array, null/undefined are false.
    taken = truthy(ctx.evaluate(step.condition, f"{path}/condition"))
    branch = "then" if taken else "else"
    await run_block(step.then if taken else step.else_, f"{path}/{branch}")
    return StepOutcome(output={"branch": branch})
