"""``control.return``: end the run with an output."""

from __future__ import annotations

from tempoflow.definition import ControlReturn
from temporal_workflows.context import RunContext
from temporal_workflows.failures import RunReturned
from temporal_workflows.nodes.base import Runtime, StepOutcome


async def execute(
    step: ControlReturn, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    raise RunReturned(ctx.resolve(step.output, f"{path}/output"))
