"""``control.tryCatch``: catch step failures (optionally by type); ``finally`` always runs
(also when the run is cancelled), except when unwinding to continue as new.

Cancellation is never caught: it is not a step failure (``asyncio.CancelledError``
passes ``catch``), and ``finally`` runs to its end within one execution."""

from __future__ import annotations

from typing import Any

from tempoflow.definition import ControlTryCatch
from temporal_workflows.context import RunContext
from temporal_workflows.failures import ContinueAsNew, StepFailure, position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome, run_nested


async def execute(
    step: ControlTryCatch, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key) or {"section": "try"}
    section: str = saved["section"]
    error: dict[str, Any] | None = saved.get("error")
    pending: StepFailure | None = None
    continuing = False
    try:
        if section == "try":
            try:
                await run_nested(rt, key, {"section": "try"}, step.try_, f"{path}/try", ctx)
            except StepFailure as failure:
                if not failure.catchable or (step.catchOn and failure.type not in step.catchOn):
                    pending = failure
                else:
                    section, error = "catch", failure.to_dict()
        if section == "catch" and step.catch:
            scope = ctx.child(names={step.errorName: error}, isolated=False)
            try:
                await run_nested(
                    rt,
                    key,
                    {"section": "catch", "error": error},
                    step.catch,
                    f"{path}/catch",
                    scope,
                )
            except StepFailure as failure:
                pending = failure
    except ContinueAsNew:
        continuing = True  # the block resumes in the next run: no finally yet
        raise
    finally:
        if step.finally_ and not continuing:
            rt.blocked += 1  # finally runs to its end within one execution
            try:
                await rt.run_block(step.finally_, f"{path}/finally", ctx)
            finally:
                rt.blocked -= 1
    if pending is not None:
        raise pending
    return StepOutcome(output={"caught": error})
