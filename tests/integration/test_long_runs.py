"""Continue-as-new: long loops finish with small histories, state and positions intact.

The test server suggests continue-as-new after 100 events (see tests/conftest.py), so
these runs continue as new many times.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from projections.group import GroupWriter
from tempoflow.records import ProjectionBatch
from tests.integration.conftest import HISTORIES, Stack


async def executions(stack: Stack, workflow_id: str) -> list[int]:
    """History length of every execution (run) of one workflow id."""
    lengths = []
    async for wf in stack.client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        history = await stack.client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        lengths.append(len(history.events))
        assert history.events[-1].event_type in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        )
    return lengths


async def record_middle_execution(stack: Stack, workflow_id: str, name: str) -> None:
    """Like ``Stack.record_history``, for an execution that resumed and continued as new
    (it replays the resume and pause paths)."""
    if not os.environ.get("TEMPOFLOW_RECORD_HISTORIES"):
        return
    runs = [wf async for wf in stack.client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    middle = runs[len(runs) // 2]
    handle = stack.client.get_workflow_handle(middle.id, run_id=middle.run_id)
    (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())


async def test_loops_inside_branches_resume_after_continue_as_new(stack: Stack) -> None:
    definition = {
        "steps": [
            {"id": "init", "type": "state.set", "values": {"total": 0}},
            {
                "id": "guard",
                "type": "control.if",
                "condition": "true",
                "then": [
                    {
                        "id": "t",
                        "type": "control.tryCatch",
                        "try": [
                            {
                                "id": "each",
                                "type": "control.forEach",
                                "items": "[1..60]",
                                "output": "out",
                                "result": {"$expr": "item * 2"},
                                "steps": [
                                    {
                                        "id": "n",
                                        "type": "action.call",
                                        "action": "test.count",
                                        "input": {"i": {"$expr": "item"}},
                                    }
                                ],
                            },
                            {
                                "id": "sum",
                                "type": "transform.assign",
                                "assign": {"total": "$sum(vars.out)"},
                            },
                        ],
                        "finally": [
                            {"id": "fin", "type": "state.set", "values": {"finally": True}}
                        ],
                    },
                ],
            },
            {
                "id": "seq",
                "type": "control.forEach",
                "items": "[1..40]",
                "concurrency": 5,
                "output": "fan",
                "steps": [
                    {
                        "id": "m",
                        "type": "action.call",
                        "action": "core.noop",
                        "input": {"i": {"$expr": "item"}},
                        "output": "r",
                    }
                ],
            },
        ]
    }
    await stack.publish("long", definition)
    run = await stack.start("long")
    out = (await stack.result(run))["output"]
    assert out["out"] == [2 * i for i in range(1, 61)]
    assert out["total"] == sum(2 * i for i in range(1, 61))
    assert out["finally"] is True
    assert [r["r"]["i"] for r in out["fan"]] == list(range(1, 41))
    lengths = await executions(stack, run["workflowId"])
    assert len(lengths) > 3  # it did continue as new, several times
    assert max(lengths) < 400
    # Every action ran exactly once despite the restarts.
    assert all(stack.effects.calls[(run["id"], "n")] == 60 for _ in [0])
    steps = await stack.steps(run["id"])
    assert len([s for s in steps if s["stepId"] == "n"]) == 60
    assert len({s["seq"] for s in steps}) == len(steps)
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"


async def test_loops_in_parallel_branches_and_nested_loops_continue_as_new(stack: Stack) -> None:
    """Loops in branches, nested loops and concurrent iterations pause at their step
    boundaries: every execution stays small, every action runs once, results are exact."""

    def count(id: str, **input: object) -> dict[str, object]:
        return {"id": id, "type": "action.call", "action": "test.count", "input": input}

    definition = {
        "steps": [
            {
                "id": "p",
                "type": "control.parallel",
                "branches": {
                    "flat": [
                        {
                            "id": "ea",
                            "type": "control.forEach",
                            "items": "[1..120]",
                            "output": "a",
                            "result": {"$expr": "item"},
                            "steps": [count("na", i={"$expr": "item"})],
                        }
                    ],
                    "nested": [
                        {
                            "id": "outer",
                            "type": "control.forEach",
                            "items": "[1..8]",
                            "output": "b",
                            "result": {"$expr": "$sum(vars.inner)"},
                            "steps": [
                                {
                                    "id": "k",
                                    "type": "state.set",
                                    "values": {"k": {"$expr": "item"}},
                                },
                                {
                                    "id": "inner",
                                    "type": "control.forEach",
                                    "items": "[1..10]",
                                    "itemName": "j",
                                    "concurrency": 3,
                                    "output": "inner",
                                    "result": {"$expr": "vars.k * j"},
                                    "steps": [count("nb", j={"$expr": "j"})],
                                },
                            ],
                        },
                        {"id": "sb", "type": "transform.assign", "assign": {"sb": "$sum(vars.b)"}},
                    ],
                },
            },
        ]
    }
    await stack.publish("par-long", definition)
    run = await stack.start("par-long")
    out = (await stack.result(run))["output"]
    assert out["a"] == list(range(1, 121))
    assert out["b"] == [55 * k for k in range(1, 9)]
    assert out["sb"] == 55 * 36
    lengths = await executions(stack, run["workflowId"])
    await record_middle_execution(stack, run["workflowId"], "parallel_loops_continue_as_new")
    assert len(lengths) > 5  # continued as new many times
    assert max(lengths) < 400  # each execution's history stays bounded
    assert stack.effects.calls[(run["id"], "na")] == 120
    assert stack.effects.calls[(run["id"], "nb")] == 80
    steps = await stack.steps(run["id"])
    assert len([s for s in steps if s["stepId"] == "na"]) == 120
    assert len([s for s in steps if s["stepId"] == "nb"]) == 80
    # Iteration indexes as numbers, outermost loop first.
    assert sorted(tuple(s["loop"]) for s in steps if s["stepId"] == "nb") == [
        (k, j) for k in range(8) for j in range(10)
    ]
    assert len({s["seq"] for s in steps}) == len(steps)
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"


@pytest.fixture
def slow_boundary_writes(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The local projection write made before unwinding to continue as new takes a second
    (and tells the test it started): a cancellation then always arrives during it."""
    started = asyncio.Event()
    original = GroupWriter.write

    async def slow(self: GroupWriter, batches: list[ProjectionBatch]) -> None:
        if activity.in_activity() and activity.info().is_local and batches[-1].run is None:
            started.set()
            await asyncio.sleep(1.0)
        await original(self, batches)

    monkeypatch.setattr(GroupWriter, "write", slow)
    return started


async def test_cancel_while_continuing_as_new_still_runs_finally(
    slow_boundary_writes: asyncio.Event, stack: Stack
) -> None:
    await stack.publish(
        "cancel-at-boundary",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "each",
                            "type": "control.forEach",
                            "items": "[1..60]",
                            "steps": [{"id": "n", "type": "action.call", "action": "test.count"}],
                        }
                    ],
                    "finally": [{"id": "fin", "type": "action.call", "action": "test.mark"}],
                }
            ]
        },
    )
    run = await stack.start("cancel-at-boundary")
    await asyncio.wait_for(slow_boundary_writes.wait(), 30)
    handle = stack.client.get_workflow_handle(run["workflowId"])
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert stack.effects.log[run["id"]] == ["fin"]
    assert (await stack.run_view(run["id"]))["status"] == "CANCELED"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["fin"] == "SUCCEEDED" and steps["each"] == "CANCELED"


async def test_a_branch_in_a_long_wait_does_not_hold_up_its_siblings(stack: Stack) -> None:
    """Continue-as-new is due while one branch waits an hour: the looping branch parks
    briefly, then goes on and wins the race."""
    await stack.publish(
        "race",
        {
            "steps": [
                {
                    "id": "p",
                    "type": "control.parallel",
                    "waitFor": "any",
                    "branches": {
                        "loop": [
                            {
                                "id": "each",
                                "type": "control.forEach",
                                "items": "[1..60]",
                                "output": "out",
                                "result": {"$expr": "item"},
                                "steps": [
                                    {"id": "n", "type": "action.call", "action": "core.noop"}
                                ],
                            }
                        ],
                        "slow": [{"id": "d", "type": "delay", "duration": "PT1H"}],
                    },
                }
            ]
        },
    )
    run = await stack.start("race")
    out = (await asyncio.wait_for(stack.result(run), 40))["output"]
    assert out["out"] == list(range(1, 61))
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["d"] == "CANCELED"


async def test_a_branch_paused_for_continue_as_new_still_runs_finally_when_a_sibling_fails(
    stack: Stack,
) -> None:
    """Continue-as-new is due in branch ``a`` while ``b`` is still busy; then ``b`` fails.
    ``a`` must not have left its ``try`` early: it is cancelled like any sibling of a
    failing branch, and its ``finally`` runs."""
    await stack.publish(
        "pause-then-fail",
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
                                        "items": "[1..200]",
                                        "steps": [
                                            {
                                                "id": "n",
                                                "type": "action.call",
                                                "action": "test.count",
                                            }
                                        ],
                                    }
                                ],
                                "finally": [
                                    {"id": "finA", "type": "action.call", "action": "test.mark"}
                                ],
                            }
                        ],
                        # One step that fails after two seconds (no boundary before it).
                        "b": [{"id": "h", "type": "human.task", "title": "t", "due": "PT2S"}],
                    },
                }
            ]
        },
    )
    run = await stack.start("pause-then-fail")
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(stack.result(run), 40)
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED" and view["error"]["type"] == "TimeoutError"
    assert stack.effects.log[run["id"]] == ["finA"]
    assert stack.effects.calls[(run["id"], "n")] < 200  # it stopped when b failed
