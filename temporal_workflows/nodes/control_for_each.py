"""``control.forEach``: iterations in isolated scopes, sequential or bounded-parallel.

Continue-as-new happens between iterations and, when due while iterations run, inside
them: no new iteration starts, running ones stop at their next step boundary, and the
loop carries the items, the finished indexes, results and errors, and the variables of
each paused iteration (their blocks carry their own positions).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

from tempoflow.definition import ControlForEach
from tempoflow.error_types import ErrorType
from temporal_workflows.context import RunContext
from temporal_workflows.failures import ContinueAsNew, StepFailure, position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome

MAX_ITEMS = 100_000


def _items(step: ControlForEach, path: str, ctx: RunContext) -> list[Any]:
    value = ctx.evaluate(step.items, f"{path}/items")
    items = [] if value is None else list(value) if isinstance(value, list) else [value]
    if len(items) > MAX_ITEMS:
        raise StepFailure(
            ErrorType.FOR_EACH_TOO_LARGE, f"{len(items)} items; the limit is {MAX_ITEMS}", None
        )
    return items


async def execute(
    step: ControlForEach, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key)
    if saved is not None:
        items, results, errors = saved["items"], saved["results"], saved["errors"]
        done: set[int] = set(saved["done"])
        partial: dict[int, Any] = {int(i): v for i, v in saved.get("partial", {}).items()}
    else:
        items = _items(step, path, ctx)
        results, errors, done, partial = [None] * len(items), [], set(), {}
    paused: dict[int, RunContext] = {}
    carried: dict[str, Any] = {}  # positions inside the paused iterations

    async def iteration(index: int) -> None:
        scope = ctx.child(
            names={step.itemName: items[index], step.indexName: index}, loop=ctx.loop_label(index)
        )
        if index in partial:  # paused by continue-as-new: its own variables again
            state = partial.pop(index)
            scope.vars, scope.assigned = state["vars"], set(state["assigned"])
        try:
            await rt.run_block(step.steps, f"{path}/steps", scope)
            results[index] = (
                scope.resolve(step.result, f"{path}/result")
                if step.result is not None
                else scope.assigned_values()
            )
        except StepFailure as failure:
            if step.onItemError == "fail" or not failure.catchable:
                raise
            errors.append({"index": index, "error": failure.to_dict()})
        except ContinueAsNew as can:
            paused[index] = scope
            carried.update(can.positions)
            return
        done.add(index)

    def checkpoint() -> ContinueAsNew:
        can = ContinueAsNew()
        can.positions.update(carried)
        can.positions[key] = {
            "items": items,
            "results": results,
            "errors": errors,
            "done": sorted(done),
        }
        if paused:
            can.positions[key]["partial"] = {
                str(i): {"vars": s.vars, "assigned": sorted(s.assigned)}
                for i, s in sorted(paused.items())
            }
        return can

    todo = [i for i in range(len(items)) if i not in done]
    if rt.patched:
        # Iterations pause at their step boundaries when continue-as-new is due.
        if step.concurrency == 1:
            for position, index in enumerate(todo):
                if position and rt.continue_due(ctx) and await rt.pause():
                    raise checkpoint()
                await iteration(index)
                if paused:
                    raise checkpoint()  # the run is unwinding already
        else:
            while todo:
                with rt.waiting_for_flows():
                    stopped = await _bounded(
                        todo,
                        step.concurrency,
                        iteration,
                        lambda: rt.continue_due(ctx) or bool(paused),
                        rt.spawn,
                    )
                if paused or (stopped and await rt.pause()):
                    raise checkpoint()
                # Not stopped, or the other flows did not park in time: go on.
                todo = [i for i in range(len(items)) if i not in done] if stopped else []
    else:
        await _legacy(step, ctx, rt, todo, iteration, checkpoint)
    errors.sort(key=lambda e: e["index"])
    if step.output is not None:
        ctx.set_var(step.output, results)
    if step.errors is not None:
        ctx.set_var(step.errors, errors)
    return StepOutcome(output={"items": len(items), "failed": len(errors)})


async def _legacy(
    step: ControlForEach, ctx: RunContext, rt: Runtime, todo: list[int], run: Any, checkpoint: Any
) -> None:
    """Runs started before the patch: continue-as-new only between the iterations of a
    loop outside any other loop or branch."""
    may_continue = rt.blocked == 0  # not inside parallel work of an enclosing step
    rt.blocked += 1
    try:
        if step.concurrency == 1:
            for position, index in enumerate(todo):
                if position and may_continue and rt.should_continue(ctx):
                    raise checkpoint()
                await run(index)
        else:
            if await _bounded(
                todo,
                step.concurrency,
                run,
                lambda: may_continue and rt.should_continue(ctx),
                asyncio.create_task,
            ):
                raise checkpoint()
    finally:
        rt.blocked -= 1


async def _bounded(todo: list[int], limit: int, run: Any, should_continue: Any, spawn: Any) -> bool:
    """At most ``limit`` iterations at once; the first failure cancels the others.
    Returns whether it stopped early because continue-as-new is due."""
    running: list[asyncio.Task[None]] = []
    queue = list(reversed(todo))
    stopping = False
    try:
        while queue or running:
            while queue and len(running) < limit and not stopping:
                running.append(spawn(run(queue.pop())))
            finished, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                running.remove(task)
                task.result()  # raises the iteration's failure
            if not stopping and queue and should_continue():
                stopping = True  # drain what runs, then continue as new
            if stopping and not running:
                return True
    except BaseException:
        for task in running:
            task.cancel()  # a failed iteration (or a cancelled loop) stops the others
        for task in running:
            try:
                await task
            except BaseException:
                pass
        raise
    return False
