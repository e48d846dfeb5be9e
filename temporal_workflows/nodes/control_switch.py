"""``control.switch``: the first case whose ``when`` is truthy, else ``default``."""

from __future__ import annotations

from expression import truthy
from tempoflow.definition import ControlSwitch
from temporal_workflows.context import RunContext
from temporal_workflows.failures import position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome, run_nested


async def execute(
    step: ControlSwitch, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key)
    if saved is not None:
        chosen = saved["case"]
    else:
        chosen = next(
            (
                i
                for i, case in enumerate(step.cases)
                if truthy(ctx.evaluate(case.when, f"{path}/cases/{i}/when"))
            ),
            None,
        )
    if chosen is None:
        await run_nested(rt, key, {"case": None}, step.default, f"{path}/default", ctx)
        return StepOutcome(output={"case": "default"})
    await run_nested(
        rt, key, {"case": chosen}, step.cases[chosen].steps, f"{path}/cases/{chosen}/steps", ctx
    )
    return StepOutcome(output={"case": chosen})
