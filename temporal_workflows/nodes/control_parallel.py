"""``control.parallel``: named branches at once; the first failure cancels the others
unless ``onBranchError: continue``; ``waitFor: any`` takes the first to succeed."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

from tempoflow.definition import ControlParallel
from temporal_workflows.context import RunContext
from temporal_workflows.failures import StepFailure
from temporal_workflows.nodes.base import Runtime, StepOutcome


async def execute(
    step: ControlParallel, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    scopes = {name: ctx.child(names={}) for name in step.branches}
    tasks = {
        name: asyncio.create_task(rt.run_block(steps, f"{path}/branches/{name}", scopes[name]))
        for name, steps in step.branches.items()
    }
    by_task = {task: name for name, task in tasks.items()}
    status: dict[str, dict[str, Any]] = {}
    winners: list[str] = []
    failure: StepFailure | None = None
    rt.blocked += 1
    try:
        pending = list(tasks.values())
        while pending:
            finished, _ = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                pending.remove(task)
                name = by_task[task]
                try:
                    task.result()
                except StepFailure as err:
                    status[name] = {"status": "FAILED", "error": err.to_dict()}
                    failure = failure or err
                    continue
                status[name] = {"status": "SUCCEEDED"}
                winners.append(name)
            stop = (failure is not None and step.onBranchError == "fail") or (
                step.waitFor == "any" and winners
            )
            if stop and pending:
                await _cancel(pending)
                for task in pending:
                    status[by_task[task]] = {"status": "CANCELED"}
                pending = []
    except BaseException:
        await _cancel([t for t in tasks.values() if not t.done()])
        raise
    finally:
        rt.blocked -= 1
    if failure is not None and (step.onBranchError == "fail" or not winners):
        raise failure
    # Join: branches' assignments, in declaration order (``any``: the winner's only).
    for name in winners[:1] if step.waitFor == "any" else step.branches:
        if name in winners:
            for var, value in scopes[name].assigned_values().items():
                ctx.set_var(var, value)
    if step.output is not None:
        ctx.set_var(step.output, {name: status[name] for name in step.branches})
    return StepOutcome(output={name: status[name]["status"] for name in step.branches})


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except BaseException:
            pass
