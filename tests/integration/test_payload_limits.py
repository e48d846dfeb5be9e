"""State over Temporal's payload limit (2 MB) fails cleanly instead of wedging the run.

Temporal refuses a command or completion carrying a payload over its limit and retries
the workflow task for ever (``TMPRL1103``): the run would stay RUNNING. The interpreter
checks sizes first: a step input fails the step with a catchable ``PayloadTooLarge``; an
output or a continue-as-new state over the limit fails the run, projected as FAILED.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

from tests.integration.conftest import Stack

BIG = {"id": "big", "type": "transform.assign", "assign": {"big": "$pad('', 900000, 'x')"}}
THREE = {"a": {"$expr": "vars.big"}, "b": {"$expr": "vars.big"}, "c": {"$expr": "vars.big"}}


async def result(stack: Stack, run: dict[str, Any]) -> Any:
    return await asyncio.wait_for(stack.result(run), 30)  # a wedged run never ends


async def test_step_inputs_over_the_limit_are_catchable(stack: Stack) -> None:
    await stack.publish(
        "small-child", {"steps": [{"id": "n", "type": "state.set", "values": {"x": 1}}]}
    )
    await stack.publish(
        "big-input",
        {
            "steps": [
                BIG,
                {
                    "id": "t1",
                    "type": "control.tryCatch",
                    "catchOn": ["PayloadTooLarge"],
                    "try": [
                        {"id": "send", "type": "action.call", "action": "test.echo", "input": THREE}
                    ],
                    "catch": [
                        {
                            "id": "c1",
                            "type": "transform.assign",
                            "assign": {"action": "error.type", "what": "error.details.what"},
                        }
                    ],
                },
                {
                    "id": "t2",
                    "type": "control.tryCatch",
                    "catchOn": ["PayloadTooLarge"],
                    "try": [
                        {
                            "id": "call",
                            "type": "control.callWorkflow",
                            "definition": "small-child",
                            "input": THREE,
                        }
                    ],
                    "catch": [
                        {"id": "c2", "type": "transform.assign", "assign": {"child": "error.type"}}
                    ],
                },
                {
                    "id": "ok",
                    "type": "action.call",
                    "action": "test.echo",
                    "input": {"n": 1},
                    "output": "echo",
                },
            ],
            "output": {
                "action": {"$expr": "vars.action"},
                "what": {"$expr": "vars.what"},
                "child": {"$expr": "vars.child"},
                "n": {"$expr": "vars.echo.n"},
            },
        },
    )
    run = await stack.start("big-input")
    out = (await result(stack, run))["output"]
    assert out == {
        "action": "PayloadTooLarge",
        "what": "the action's input",
        "child": "PayloadTooLarge",
        "n": 1,
    }
    assert stack.effects.calls[(run["id"], "send")] == 0
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    assert steps["send"]["status"] == "FAILED" and steps["call"]["status"] == "FAILED"
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"


@pytest.mark.parametrize("where", ["output", "continue-as-new"])
async def test_state_over_the_limit_fails_the_run_and_projects_it(stack: Stack, where: str) -> None:
    steps: list[dict[str, Any]] = [
        BIG,
        {
            "id": "copies",
            "type": "state.set",
            "values": {"b2": {"$expr": "vars.big"}, "b3": {"$expr": "vars.big"}},
        },
    ]
    if where == "continue-as-new":
        steps.append(
            {
                "id": "each",
                "type": "control.forEach",
                "items": "[1..60]",
                # Regular activities: a local one (core.noop) adds too few history
                # events per step to get there.
                "steps": [{"id": "n", "type": "action.call", "action": "test.echo"}],
            }
        )
    await stack.publish(f"too-big-{where}", {"steps": steps})
    run = await stack.start(f"too-big-{where}")
    with pytest.raises(WorkflowFailureError) as failed:
        await result(stack, run)
    assert failed.value.cause.type == "PayloadTooLarge"  # type: ignore[attr-defined]
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "PayloadTooLarge"
    if where == "output":
        assert view["error"]["stepPath"] == "/output"
    else:
        assert view["error"]["stepPath"].startswith("/steps/2")
