"""A worker stopped mid-run; a new one finishes the run exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from launcher.worker import create_worker
from tests.integration.conftest import Stack

TWO_STEPS = {
    "steps": [
        {"id": "first", "type": "action.call", "action": "test.gate", "output": "one"},
        {
            "id": "second",
            "type": "action.call",
            "action": "test.echo",
            "input": {"n": 2},
            "output": "two",
        },
    ]
}


async def _restart_scenario(stack: Stack, *, release_before_stop: bool) -> dict:
    """Run on a second worker (the stack's own worker keeps polling another queue)."""
    queue = stack.settings.task_queue + "-restart"
    stack.settings.task_queue = queue
    await stack.publish("two", TWO_STEPS)

    def worker(graceful: float):
        return create_worker(
            stack.client,
            task_queue=queue,
            registry=stack.worker_registry,
            sessions=stack.sessions,
            graceful_shutdown=timedelta(seconds=graceful),
        )

    first = worker(graceful=10 if release_before_stop else 0.5)
    first_task = asyncio.create_task(first.run())
    run = await stack.start("two")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    shutdown = asyncio.create_task(first.shutdown())
    await asyncio.sleep(0.2)  # pollers stop first: the next step cannot start here
    if release_before_stop:
        stack.effects.release[run["id"]].set()  # "first" completes during graceful stop
    await shutdown
    await first_task
    assert stack.effects.calls[(run["id"], "second")] == 0
    stack.effects.release[run["id"]].set()
    async with worker(graceful=5):
        result = await asyncio.wait_for(stack.result(run), 30)
    return {"run": run, "result": result}


async def test_stop_between_steps_completes_exactly_once(stack: Stack) -> None:
    out = await _restart_scenario(stack, release_before_stop=True)
    run = out["run"]
    assert out["result"]["output"] == {"one": {"gated": True}, "two": {"n": 2, "attempt": 1}}
    assert stack.effects.calls[(run["id"], "first")] == 1
    assert stack.effects.calls[(run["id"], "second")] == 1
    steps = await stack.steps(run["id"])
    assert [(s["stepId"], s["status"], s["attempt"]) for s in steps] == [
        ("first", "SUCCEEDED", 1),
        ("second", "SUCCEEDED", 1),
    ]
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"


async def test_stop_inside_slow_action_retries_it_after_restart(stack: Stack) -> None:
    """The action is cancelled by the stopping worker and retried by the next one."""
    stack.settings.task_queue += "-slow"
    out = await _restart_scenario(stack, release_before_stop=False)
    run = out["run"]
    assert out["result"]["output"]["two"] == {"n": 2, "attempt": 1}
    assert stack.effects.calls[(run["id"], "first")] == 2
    assert stack.effects.calls[(run["id"], "second")] == 1
    # Both attempts carried the same idempotency key, so a receiver can deduplicate.
    assert len(stack.effects.keys[(run["id"], "first")]) == 1
    steps = await stack.steps(run["id"])
    assert [(s["stepId"], s["status"], s["attempt"]) for s in steps] == [
        ("first", "SUCCEEDED", 2),
        ("second", "SUCCEEDED", 1),
    ]
