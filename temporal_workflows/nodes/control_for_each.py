"""``control.forEach``: iterations in isolated scopes, sequential or bounded-parallel.

Continue-as-new happens between iterations (never inside one), carrying the items, the
finished indexes, results and errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

from tempoflow.definition import ControlForEach
from temporal_workflows.context import RunContext
from temporal_workflows.failures import ContinueAsNew, StepFailure, position_key
from temporal_workflows.nodes.base import Runtime, StepOutcome

MAX_ITEMS = 100_000


def _items(step: ControlForEach, path: str, ctx: RunContext) -> list[Any]:
    value = ctx.evaluate(step.items, f"{path}/items")
    items = [] if value is None else list(value) if isinstance(value, list) else [value]
    if len(items) > MAX_ITEMS:
        raise StepFailure("ForEachTooLarge", f"{len(items)} items; the limit is {MAX_ITEMS}", None)
    return items


async def execute(
    step: ControlForEach, path: str, seq: int, ctx: RunContext, rt: Runtime
) -> StepOutcome:
    key = position_key(path, ctx.loop)
    saved = rt.resume(key)
    if saved is not None:
        items, results, errors = saved["items"], saved["results"], saved["errors"]
        done: set[int] = set(saved["done"])
    else:
        items = _items(step, path, ctx)
        results, errors, done = [None] * len(items), [], set()

    async def iteration(index: int) -> None:
        scope = ctx.child(
            names={step.itemName: items[index], step.indexName: index}, loop=ctx.loop_label(index)
        )
        try:
            await rt.run_block(step.steps, f"{path}/steps", scope)
            results[index] = (
                scope.resolve(step.result, f"{path}/result")
                if step.result is not None
                else scope.assigned_values()
            )
        except StepFailure as failure:
            if step.onItemError == "fail":
                raise
            errors.append({"index": index, "error": failure.to_dict()})
        done.add(index)

    def checkpoint() -> ContinueAsNew:
        can = ContinueAsNew()
        can.positions[key] = {
            "items": items,
            "results": results,
            "errors": errors,
            "done": sorted(done),
        }
        return can

    may_continue = rt.blocked == 0  # not inside parallel work of an enclosing step
    todo = [i for i in range(len(items)) if i not in done]
    rt.blocked += 1
    try:
        if step.concurrency == 1:
            for position, index in enumerate(todo):
                if position and may_continue and rt.should_continue(ctx):
                    raise checkpoint()
                await iteration(index)
        else:
            await _bounded(
                todo,
                step.concurrency,
                iteration,
                lambda: may_continue and rt.should_continue(ctx),
                checkpoint,
            )
    finally:
        rt.blocked -= 1
    errors.sort(key=lambda e: e["index"])
    if step.output is not None:
        ctx.set_var(step.output, results)
    if step.errors is not None:
        ctx.set_var(step.errors, errors)
    return StepOutcome(output={"items": len(items), "failed": len(errors)})


async def _bounded(
    todo: list[int], limit: int, run: Any, should_continue: Any, checkpoint: Any
) -> None:
    """At most ``limit`` iterations at once; the first failure cancels the others."""
    running: list[asyncio.Task[None]] = []
    queue = list(reversed(todo))
    stopping = False
    try:
        while queue or running:
            while queue and len(running) < limit and not stopping:
                running.append(asyncio.create_task(run(queue.pop())))
            finished, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                running.remove(task)
                task.result()  # raises the iteration's failure
            if not stopping and queue and should_continue():
                stopping = True  # drain what runs, then continue as new
            if stopping and not running:
                raise checkpoint()
    except BaseException:
        for task in running:
            task.cancel()
        for task in running:
            try:
                await task
            except BaseException:
                pass
        raise
