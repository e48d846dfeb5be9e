"""Control-flow nodes end to end on the real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from tests.integration.conftest import Stack, until


def noop(id: str, output: str | None = None, **input: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"id": id, "type": "action.call", "action": "core.noop", "input": input}
    if output:
        step["output"] = output
    return step


async def run_ok(stack: Stack, key: str, definition: dict[str, Any], data: Any = None) -> Any:
    await stack.publish(key, definition)
    run = await stack.start(key, data if data is not None else {})
    return (await stack.result(run))["output"], run


async def run_failing(stack: Stack, key: str, definition: dict[str, Any]) -> dict[str, Any]:
    await stack.publish(key, definition)
    run = await stack.start(key)
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    return await stack.run_view(run["id"])


async def test_switch_and_sequential_for_each(stack: Stack) -> None:
    out, run = await run_ok(
        stack,
        "loop",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": "payload.orders",
                    "itemName": "order",
                    "indexName": "i",
                    "output": "results",
                    "steps": [
                        {
                            "id": "route",
                            "type": "control.switch",
                            "cases": [
                                {
                                    "when": "order.total > 100",
                                    "steps": [
                                        {
                                            "id": "big",
                                            "type": "state.set",
                                            "values": {"lane": "review"},
                                        }
                                    ],
                                },
                            ],
                            "default": [
                                {"id": "small", "type": "state.set", "values": {"lane": "auto"}}
                            ],
                        },
                        noop("ack", output="ack", order={"$expr": "order.id"}, at={"$expr": "i"}),
                    ],
                },
            ]
        },
        {"orders": [{"id": "a", "total": 5}, {"id": "b", "total": 500}, {"id": "c", "total": 1}]},
    )
    assert out["results"] == [
        {"lane": "auto", "ack": {"order": "a", "at": 0}},
        {"lane": "review", "ack": {"order": "b", "at": 1}},
        {"lane": "auto", "ack": {"order": "c", "at": 2}},
    ]
    assert "lane" not in out  # iterations have their own copy of vars
    steps = await stack.steps(run["id"])
    acks = [(s["loop"], s["status"]) for s in steps if s["stepId"] == "ack"]
    assert acks == [([0], "SUCCEEDED"), ([1], "SUCCEEDED"), ([2], "SUCCEEDED")]


async def test_bounded_parallel_for_each_with_continue_policy(stack: Stack) -> None:
    out, _ = await run_ok(
        stack,
        "fan",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": "[1..12]",
                    "concurrency": 4,
                    "onItemError": "continue",
                    "output": "res",
                    "errors": "errs",
                    "result": {"$expr": "item * 10"},
                    "steps": [
                        {
                            "id": "maybe",
                            "type": "control.if",
                            "condition": "item % 5 = 0",
                            "then": [
                                {
                                    "id": "bad",
                                    "type": "action.call",
                                    "action": "test.fail",
                                    "input": {
                                        "type": "Invalid",
                                        "message": {"$expr": "'item ' & item"},
                                    },
                                }
                            ],
                        },
                        noop("work", n={"$expr": "item"}),
                    ],
                },
            ]
        },
    )
    assert out["res"] == [10, 20, 30, 40, None, 60, 70, 80, 90, None, 110, 120]
    assert [(e["index"], e["error"]["type"], e["error"]["message"]) for e in out["errs"]] == [
        (4, "Invalid", "item 5"),
        (9, "Invalid", "item 10"),
    ]


async def test_for_each_fail_policy_stops_the_loop(stack: Stack) -> None:
    view = await run_failing(
        stack,
        "stop",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": "[1..6]",
                    "concurrency": 2,
                    "steps": [
                        {
                            "id": "maybe",
                            "type": "control.if",
                            "condition": "item = 2",
                            "then": [{"id": "bad", "type": "action.call", "action": "test.fail"}],
                        },
                        noop("work"),
                    ],
                },
            ]
        },
    )
    assert view["error"]["type"] == "PaymentDeclined"
    assert view["error"]["stepPath"] == "/steps/0/steps/0/then/0"


async def test_parallel_joins_branch_assignments(stack: Stack) -> None:
    out, _ = await run_ok(
        stack,
        "par",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "output": "branches",
                    "branches": {
                        "left": [noop("l", output="l", side="left")],
                        "right": [{"id": "r", "type": "state.set", "values": {"r": 2}}, noop("r2")],
                    },
                },
            ]
        },
    )
    assert out["l"] == {"side": "left"} and out["r"] == 2
    assert out["branches"] == {"left": {"status": "SUCCEEDED"}, "right": {"status": "SUCCEEDED"}}


async def test_failing_branch_cancels_its_sibling(stack: Stack) -> None:
    await stack.publish(
        "cancel-sibling",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "branches": {
                        "slow": [
                            {
                                "id": "hb",
                                "type": "action.call",
                                "action": "test.heartbeat",
                                "timeouts": {"heartbeat": "PT2S"},
                            }
                        ],
                        "bad": [
                            {"id": "wait", "type": "delay", "duration": "PT0.3S"},
                            {"id": "boom", "type": "action.call", "action": "test.fail"},
                        ],
                    },
                },
            ]
        },
    )
    run = await stack.start("cancel-sibling")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    await until(lambda: _cancelled(stack, run["id"]))  # the heartbeating action saw it
    assert stack.effects.cancelled[run["id"]] == 1
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["hb"] == "CANCELED" and steps["boom"] == "FAILED"


async def test_parallel_continue_and_any(stack: Stack) -> None:
    out, _ = await run_ok(
        stack,
        "par2",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "onBranchError": "continue",
                    "output": "st",
                    "branches": {
                        "ok": [noop("a", output="a")],
                        "bad": [{"id": "f", "type": "action.call", "action": "test.fail"}],
                    },
                },
                {
                    "id": "q",
                    "type": "control.parallel",
                    "waitFor": "any",
                    "branches": {
                        "fast": [{"id": "v", "type": "state.set", "values": {"winner": "fast"}}],
                        "slow": [
                            {"id": "d", "type": "delay", "duration": "PT30S"},
                            {"id": "w", "type": "state.set", "values": {"winner": "slow"}},
                        ],
                    },
                },
            ]
        },
    )
    assert out["st"]["ok"] == {"status": "SUCCEEDED"}
    assert out["st"]["bad"]["status"] == "FAILED"
    assert out["st"]["bad"]["error"]["type"] == "PaymentDeclined"
    assert out["winner"] == "fast"


async def test_try_catch_finally(stack: Stack) -> None:
    out, _ = await run_ok(
        stack,
        "tc",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "catchOn": ["PaymentDeclined"],
                    "try": [
                        {
                            "id": "charge",
                            "type": "action.call",
                            "action": "test.fail",
                            "input": {
                                "type": "PaymentDeclined",
                                "message": "nope",
                                "retryable": True,
                            },
                            "retry": {"maxAttempts": 2, "initialInterval": "PT0.05S"},
                        }
                    ],
                    "catch": [
                        {
                            "id": "seen",
                            "type": "transform.assign",
                            "assign": {
                                "caught": "error.type & ':' & error.message",
                                "where": "error.stepPath",
                                "attempt": "error.attempt",
                            },
                        }
                    ],
                    "finally": [{"id": "fin", "type": "state.set", "values": {"cleaned": True}}],
                },
            ]
        },
    )
    assert out == {
        "caught": "PaymentDeclined:nope",
        "where": "/steps/0/try/0",
        "attempt": 2,
        "cleaned": True,
    }


async def test_uncaught_type_runs_finally_then_fails(stack: Stack) -> None:
    view = await run_failing(
        stack,
        "tc2",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "catchOn": ["Other"],
                    "try": [
                        {"id": "x", "type": "transform.assign", "assign": {"v": "$number('z')"}}
                    ],
                    "catch": [{"id": "c", "type": "state.set", "values": {"c": 1}}],
                    "finally": [noop("fin")],
                },
            ]
        },
    )
    assert view["error"]["type"] == "ExpressionError"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(view["id"])}
    assert steps["fin"] == "SUCCEEDED" and "c" not in steps


async def test_nested_for_each_in_try_in_parallel(stack: Stack) -> None:
    out, _ = await run_ok(
        stack,
        "nested",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "branches": {
                        "a": [
                            {
                                "id": "t",
                                "type": "control.tryCatch",
                                "try": [
                                    {
                                        "id": "each",
                                        "type": "control.forEach",
                                        "items": "[1, 2, 3]",
                                        "output": "sq",
                                        "result": {"$expr": "item * item"},
                                        "steps": [noop("n", v={"$expr": "item"})],
                                    },
                                    {"id": "fail", "type": "action.call", "action": "test.fail"},
                                ],
                                "catch": [
                                    {"id": "c", "type": "state.set", "values": {"recovered": True}}
                                ],
                            }
                        ],
                        "b": [noop("b", output="b", x=1)],
                    },
                },
            ]
        },
    )
    assert out == {"sq": [1, 4, 9], "recovered": True, "b": {"x": 1}}


async def test_child_workflow_success_failure_and_links(stack: Stack) -> None:
    await stack.publish(
        "child",
        {
            "steps": [
                {
                    "id": "c",
                    "type": "control.if",
                    "condition": "payload.fail",
                    "then": [{"id": "boom", "type": "action.call", "action": "test.fail"}],
                },
                {
                    "id": "r",
                    "type": "control.return",
                    "output": {"doubled": {"$expr": "payload.n * 2"}},
                },
            ]
        },
    )
    out, run = await run_ok(
        stack,
        "parent",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "control.callWorkflow",
                    "definition": "child",
                    "input": {"n": {"$expr": "payload.n"}},
                    "output": "child",
                },
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "bad",
                            "type": "control.callWorkflow",
                            "definition": "child",
                            "input": {"n": 1, "fail": True},
                        }
                    ],
                    "catch": [
                        {
                            "id": "c",
                            "type": "transform.assign",
                            "assign": {"err": "error.type", "inner": "error.details.cause.type"},
                        }
                    ],
                },
            ]
        },
        {"n": 21},
    )
    assert out["child"] == {"doubled": 42}
    assert out["err"] == "ChildWorkflowFailed" and out["inner"] == "PaymentDeclined"
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    child_id = steps["call"]["output"]["childRunId"]
    child = await stack.run_view(child_id)
    assert child["status"] == "SUCCEEDED" and child["parentRunId"] == run["id"]
    children = (await stack.http.get(f"/v1/runs?parent={run['id']}", headers=stack.auth())).json()
    assert {c["id"] for c in children["items"]} == {
        child_id,
        steps["bad"]["error"]["details"]["childRunId"],
    }


async def test_call_unknown_definition_is_catchable(stack: Stack) -> None:
    view = await run_failing(
        stack,
        "orphan",
        {"steps": [{"id": "call", "type": "control.callWorkflow", "definition": "nope"}]},
    )
    assert view["error"]["type"] == "DefinitionNotFound"


async def test_delay_until(stack: Stack) -> None:
    _, run = await run_ok(
        stack,
        "until",
        {
            "steps": [
                {"id": "soon", "type": "transform.assign", "assign": {"at": "$millis() + 200"}},
                {"id": "wait", "type": "delay", "until": "vars.at"},
                {"id": "past", "type": "delay", "until": "'2020-01-01T00:00:00Z'"},
            ]
        },
    )
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    assert 0 < steps["wait"]["output"]["waitedSeconds"] <= 0.2
    assert steps["past"]["output"]["waitedSeconds"] == 0


async def test_cancel_stops_runs_finally_and_ends_canceled(stack: Stack) -> None:
    await stack.publish(
        "cancel-me",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "hb",
                            "type": "action.call",
                            "action": "test.heartbeat",
                            "timeouts": {"heartbeat": "PT2S"},
                        }
                    ],
                    "finally": [noop("cleanup", done=True)],
                },
                {"id": "after", "type": "state.set", "values": {"never": True}},
            ]
        },
    )
    run = await stack.start("cancel-me")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    handle = stack.client.get_workflow_handle(run["workflowId"])
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    view = await stack.run_view(run["id"])
    assert view["status"] == "CANCELED"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["cleanup"] == "SUCCEEDED" and steps["hb"] == "CANCELED"
    assert "after" not in steps
    await until(lambda: _cancelled(stack, run["id"]))  # at the activity's next heartbeat
    assert stack.effects.cancelled[run["id"]] == 1


async def _cancelled(stack: Stack, run_id: str) -> int:
    return stack.effects.cancelled[run_id]


async def _children(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    r = await stack.http.get(f"/v1/runs?parent={run_id}", headers=stack.auth())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_cancel_during_call_workflow_ends_canceled_and_is_not_caught(stack: Stack) -> None:
    await stack.publish(
        "slow-child",
        {
            "steps": [
                {
                    "id": "hb",
                    "type": "action.call",
                    "action": "test.heartbeat",
                    "timeouts": {"heartbeat": "PT2S"},
                }
            ]
        },
    )
    await stack.publish(
        "cancel-parent",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {"id": "call", "type": "control.callWorkflow", "definition": "slow-child"}
                    ],
                    "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
                    "finally": [noop("cleanup", done=True)],
                },
                {"id": "after", "type": "state.set", "values": {"never": True}},
            ]
        },
    )
    run = await stack.start("cancel-parent")
    children = await until(lambda: _children(stack, run["id"]))
    child_id = children[0]["id"]
    await asyncio.wait_for(stack.effects.reached[child_id].wait(), 20)
    handle = stack.client.get_workflow_handle(run["workflowId"])
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    view = await stack.run_view(run["id"])
    assert view["status"] == "CANCELED"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["call"] == "CANCELED" and steps["cleanup"] == "SUCCEEDED"
    assert "caught" not in steps and "after" not in steps
    assert (await until(lambda: _child_status(stack, child_id, "CANCELED"))) is True
    await stack.record_history(run, "cancel_call_workflow")


async def _child_status(stack: Stack, run_id: str, status: str) -> bool:
    return bool((await stack.run_view(run_id))["status"] == status)


async def test_sibling_failure_cancels_a_child_workflow_branch(stack: Stack) -> None:
    await stack.publish(
        "sleepy-child",
        {"steps": [{"id": "d", "type": "delay", "duration": "PT1H"}]},
    )
    view = await run_failing(
        stack,
        "par-child",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "branches": {
                        "child": [
                            {
                                "id": "call",
                                "type": "control.callWorkflow",
                                "definition": "sleepy-child",
                            }
                        ],
                        "bad": [
                            {"id": "wait", "type": "delay", "duration": "PT0.5S"},
                            {"id": "boom", "type": "action.call", "action": "test.fail"},
                        ],
                    },
                },
            ]
        },
    )
    assert view["error"]["type"] == "PaymentDeclined"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(view["id"])}
    assert steps["call"] == "CANCELED" and steps["boom"] == "FAILED"


@pytest.mark.parametrize(
    ("cancellation", "order"),
    [
        ("waitCompleted", ["action cleaned up", "fin"]),
        ("tryCancel", ["fin", "action cleaned up"]),
    ],
)
async def test_finally_waits_for_a_cancelled_action_when_asked(
    stack: Stack, cancellation: str, order: list[str]
) -> None:
    await stack.publish(
        "compensate",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "work",
                            "type": "action.call",
                            "action": "test.slowcancel",
                            "timeouts": {"heartbeat": "PT2S"},
                            "cancellation": cancellation,
                        }
                    ],
                    "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
                    "finally": [{"id": "fin", "type": "action.call", "action": "test.mark"}],
                }
            ]
        },
    )
    run = await stack.start("compensate")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    handle = stack.client.get_workflow_handle(run["workflowId"])
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await until(lambda: _logged(stack, run["id"], 2))
    assert stack.effects.log[run["id"]] == order
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["work"] == "CANCELED" and "caught" not in steps
    assert (await stack.run_view(run["id"]))["status"] == "CANCELED"


async def _logged(stack: Stack, run_id: str, n: int) -> bool:
    return len(stack.effects.log[run_id]) >= n
