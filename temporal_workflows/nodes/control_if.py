"""``control.if``: run ``then`` or ``else``."""

from __future__ import annotations

from expression import truthy
from tempoflow.definition import ControlIf
from temporal_workflows.context import RunContext
from temporal_workflows.failures import position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome, run_nested


async def execute(
    step: ControlIf, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key)
    if saved is not None:  # resumed after continue-as-new: the branch already chosen
        branch = saved["branch"]
    else:
        # JSONata truthiness: empty string, 0, empty array, null/undefined are false.
        branch = "then" if truthy(ctx.evaluate(step.condition, f"{path}/condition")) else "else"
    steps = step.then if branch == "then" else step.else_
    await run_nested(rt, key, {"branch": branch}, steps, f"{path}/{branch}", ctx)
    return StepOutcome(output={"branch": branch})
