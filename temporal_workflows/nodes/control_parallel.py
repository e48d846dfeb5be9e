"""``control.parallel``: named branches at once; the first failure cancels the others
unless ``onBranchError: continue``; ``waitFor: any`` takes the first to succeed.

When continue-as-new is due, every branch stops at its next step boundary; the step
carries each branch's status and variables (the branches' blocks their positions)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

from tempoflow.definition import ControlParallel
from temporal_workflows.context import RunContext
from temporal_workflows.failures import ContinueAsNew, StepFailure, position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome


async def execute(
    step: ControlParallel, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key) if rt.patched else None
    scopes = {name: ctx.child(names={}) for name in step.branches}
    status: dict[str, dict[str, Any]] = {}
    winners: list[str] = []
    failure: StepFailure | None = None
    if saved is not None:  # resumed after continue-as-new
        status, winners = saved["status"], saved["winners"]
        failure = StepFailure.from_dict(saved["failure"]) if saved["failure"] else None
        for name, state in saved["scopes"].items():
            scopes[name].vars, scopes[name].assigned = state["vars"], set(state["assigned"])
    tasks = {
        name: rt.spawn(rt.run_block(steps, f"{path}/branches/{name}", scopes[name]))
        for name, steps in step.branches.items()
        if name not in status
    }
    by_task = {task: name for name, task in tasks.items()}
    paused: list[str] = []
    carried: dict[str, Any] = {}  # positions inside the paused branches
    stopped = False
    if not rt.patched:
        rt.blocked += 1
    with rt.waiting_for_flows():
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
                        failure = err if failure is None or not err.catchable else failure
                        continue
                    except ContinueAsNew as pause:
                        paused.append(name)
                        carried.update(pause.positions)
                        continue
                    status[name] = {"status": "SUCCEEDED"}
                    winners.append(name)
                stop = (
                    failure is not None and (step.onBranchError == "fail" or not failure.catchable)
                ) or (step.waitFor == "any" and winners)
                if stop and pending:
                    await _cancel(pending)
                    for task in pending:
                        status[by_task[task]] = {"status": "CANCELED"}
                    pending = []
                stopped = stopped or bool(stop)
        except BaseException:
            await _cancel([t for t in tasks.values() if not t.done()])
            raise
        finally:
            if not rt.patched:
                rt.blocked -= 1
    if paused and not stopped:
        await rt.pause()  # the branches unwound: the run is unwinding already
        can = ContinueAsNew()
        can.positions.update(carried)
        can.positions[key] = {
            "status": status,
            "winners": winners,
            "failure": failure.to_dict() if failure is not None else None,
            "scopes": {
                name: {"vars": scopes[name].vars, "assigned": sorted(scopes[name].assigned)}
                for name in [*winners, *paused]
            },
        }
        raise can
    if failure is not None and not failure.catchable:
        raise failure
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
