"""Node executors on a RunContext outside Temporal (they are pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from expression import EvalContext
from tempoflow.definition import parse_definition
from tempoflow.limits import RunLimits
from temporal_workflows.context import RunContext
from temporal_workflows.failures import RunReturned, StepFailure
from temporal_workflows.models import RunInput
from temporal_workflows.nodes import EXECUTORS, Runtime

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def ctx(payload: Any = None) -> RunContext:
    inp = RunInput(
        run_id="r1",
        tenant="acme",
        definition_key="k",
        definition_version=3,
        definition={},
        input=payload,
    )
    return RunContext(
        inp,
        workflow_id="acme/r1",
        started_at=START,
        attempt=1,
        eval_context=EvalContext(now=lambda: START),
    )


def step(body: dict[str, Any]) -> Any:
    return parse_definition({"steps": [body]}).steps[0]


async def run(s: Any, c: RunContext, path: str = "/steps/0") -> Any:
    ran: list[tuple[list[Any], str]] = []

    async def run_block(steps: list[Any], base: str, scope: RunContext) -> None:
        ran.append(([x.id for x in steps], base))

    runtime = Runtime(run_block, {}, lambda ctx: False)
    outcome = await EXECUTORS[s.type](s, path, 1, c, runtime)
    return outcome, ran


async def test_state_set_creates_parents_and_resolves() -> None:
    c = ctx({"n": 4})
    outcome, _ = await run(
        step(
            {
                "id": "a",
                "type": "state.set",
                "values": {
                    "order.total": {"$expr": "payload.n * 2"},
                    "order.currency": "EUR",
                    "flag": True,
                },
            }
        ),
        c,
    )
    assert c.vars == {"order": {"total": 8, "currency": "EUR"}, "flag": True}
    assert outcome.output == {"order.total": 8, "order.currency": "EUR", "flag": True}


async def test_state_set_replaces_non_object_parent() -> None:
    c = ctx()
    c.vars["a"] = 5
    await run(step({"id": "s", "type": "state.set", "values": {"a.b": 1}}), c)
    assert c.vars == {"a": {"b": 1}}


async def test_assign_sees_state_before_the_step() -> None:
    c = ctx()
    c.vars["x"] = 1
    await run(
        step({"id": "a", "type": "transform.assign", "assign": {"x": "vars.x + 1", "y": "vars.x"}}),
        c,
    )
    assert c.vars == {"x": 2, "y": 1}


async def test_meta_is_visible() -> None:
    c = ctx()
    await run(
        step(
            {
                "id": "a",
                "type": "transform.assign",
                "assign": {
                    "m": "meta.definitionKey & '@' & $string(meta.definitionVersion)",
                    "t": "meta.startedAt",
                    "now": "$now()",
                },
            }
        ),
        c,
    )
    assert c.vars == {"m": "k@3", "t": START.isoformat(), "now": "2026-01-02T03:04:05.000Z"}


@pytest.mark.parametrize(
    ("condition", "branch"),
    [
        ("payload.n > 1", "then"),
        ("payload.n > 5", "else"),
        ("payload.missing", "else"),
        ("payload.list", "then"),
        ("''", "else"),
    ],
)
async def test_if_picks_branch(condition: str, branch: str) -> None:
    c = ctx({"n": 2, "list": [0, 1]})
    s = step(
        {
            "id": "c",
            "type": "control.if",
            "condition": condition,
            "then": [{"id": "t", "type": "state.set", "values": {"a": 1}}],
            "else": [{"id": "e", "type": "state.set", "values": {"a": 2}}],
        }
    )
    outcome, ran = await run(s, c, "/steps/4")
    assert outcome.output == {"branch": branch}
    assert ran == [(["t"] if branch == "then" else ["e"], f"/steps/4/{branch}")]


async def test_return_raises_with_output() -> None:
    c = ctx({"v": 9})
    with pytest.raises(RunReturned) as returned:
        await run(
            step(
                {
                    "id": "r",
                    "type": "control.return",
                    "output": {"v": {"$expr": "payload.v"}, "lit": [1]},
                }
            ),
            c,
        )
    assert returned.value.output == {"v": 9, "lit": [1]}


async def test_expression_failure_is_catchable_step_failure() -> None:
    c = ctx()
    with pytest.raises(StepFailure) as failure:
        await run(step({"id": "a", "type": "transform.assign", "assign": {"x": "$number('z')"}}), c)
    assert failure.value.type == "ExpressionError"
    assert failure.value.path is None  # the interpreter fills in the step path
    assert failure.value.details["path"] == "/steps/0/assign/x"


def test_pending_batch_carries_run_record_once() -> None:
    c = ctx()
    first = c.take_pending()
    assert first.run is not None and first.run.status == "RUNNING"
    assert first.run.workflow_id == "acme/r1"
    assert c.take_pending().run is None


def test_idempotency_key_is_stable_per_path() -> None:
    assert ctx().idempotency_key("/steps/1") == ctx().idempotency_key("/steps/1")
    assert ctx().idempotency_key("/steps/1") != ctx().idempotency_key("/steps/2")


@pytest.mark.parametrize(
    ("n", "case", "ran"),
    [
        (1, 0, ["a"]),
        (5, 1, ["b"]),
        (99, "default", ["d"]),
    ],
)
async def test_switch_picks_first_truthy_case(n: int, case: object, ran: list[str]) -> None:
    s = step(
        {
            "id": "sw",
            "type": "control.switch",
            "cases": [
                {
                    "when": "payload.n < 3",
                    "steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}],
                },
                {
                    "when": "payload.n < 10",
                    "steps": [{"id": "b", "type": "state.set", "values": {"x": 2}}],
                },
            ],
            "default": [{"id": "d", "type": "state.set", "values": {"x": 3}}],
        }
    )
    outcome, blocks = await run(s, ctx({"n": n}))
    assert outcome.output == {"case": case}
    assert blocks[0][0] == ran


async def test_if_resumes_the_saved_branch_without_re_evaluating() -> None:
    s = step(
        {
            "id": "c",
            "type": "control.if",
            "condition": "$number('boom')",
            "then": [{"id": "t", "type": "state.set", "values": {"a": 1}}],
        }
    )
    ran: list[str] = []

    async def run_block(steps: list[Any], base: str, scope: RunContext) -> None:
        ran.append(base)

    runtime = Runtime(run_block, {"/steps/0@": {"branch": "then"}}, lambda ctx: False)
    outcome = await EXECUTORS[s.type](s, "/steps/0", 1, ctx(), runtime)
    assert outcome.output == {"branch": "then"} and ran == ["/steps/0/then"]


def test_pointer_targets_and_copy_on_write() -> None:
    parent = ctx()
    parent.set_var("/order/lines", [1, 2])
    parent.set_var("order.total", 3)
    child = parent.child(names={"item": 1})
    child.set_var("order.total", 99)
    child.set_var("/order/lines/0", "x")
    assert parent.vars == {"order": {"lines": [1, 2], "total": 3}}
    assert child.vars == {"order": {"lines": ["x", 2], "total": 99}}
    assert child.assigned == {"order"} and child.envelope()["item"] == 1
    shared = parent.child(names={"error": {}}, isolated=False)
    shared.set_var("flag", True)
    assert parent.vars["flag"] is True and "flag" in parent.assigned


def test_loop_labels_nest_and_change_idempotency_keys() -> None:
    outer = ctx().child(names={}, loop="3")
    inner = outer.child(names={}, loop=outer.loop_label(7))
    assert inner.loop == "3.7"
    assert inner.idempotency_key("/s") != outer.idempotency_key("/s") != ctx().idempotency_key("/s")


def test_human_task_resolves_every_text_field_including_role() -> None:
    from temporal_workflows.nodes.human_task import texts

    task = step(
        {
            "id": "t",
            "type": "human.task",
            "title": {"$expr": "'Approve ' & payload.id"},
            "description": "plain",
            "assignee": {"$expr": "payload.who"},
            "role": {"$expr": "payload.team & '-lead'"},
        }
    )
    c = ctx({"id": "o-1", "who": "ann", "team": "x" * 70})
    assert texts(task, "/steps/0", c) == {
        "title": "Approve o-1",
        "description": "plain",
        "assignee": "ann",
        "role": ("x" * 70 + "-lead")[:64],  # what the task list stores
    }
    literal = step({"id": "t", "type": "human.task", "title": "x", "role": "finance"})
    assert texts(literal, "/steps/0", c)["role"] == "finance"


class Pausing:
    """A fake block runner: the first time it runs a block it pauses it (continue-as-new)
    when ``pause(scope)`` says so, after assigning ``seen``; resumed blocks finish."""

    def __init__(self, pause: Any) -> None:
        self.pause = pause
        self.resumed: list[str] = []
        self.rt: Runtime | None = None

    async def __call__(self, steps: list[Any], base: str, scope: RunContext) -> None:
        from temporal_workflows.failures import ContinueAsNew, position_key

        key = position_key(base, scope.loop)
        assert self.rt is not None
        if self.rt.resume(key) is not None:
            self.resumed.append(key)
            scope.set_var("done", scope.vars["seen"])
            return
        scope.set_var("seen", scope.names.get("item", base.rsplit("/", 1)[-1]))
        if self.pause(scope):
            self.rt.draining = True
            can = ContinueAsNew()
            can.positions[key] = 1
            raise can
        scope.set_var("done", scope.vars["seen"])


def runtime(block: Pausing, positions: dict[str, Any]) -> Runtime:
    block.rt = Runtime(block, positions, lambda ctx: False)
    return block.rt


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_for_each_pauses_inside_iterations_and_resumes_them(concurrency: int) -> None:
    from temporal_workflows.failures import ContinueAsNew

    s = step(
        {
            "id": "each",
            "type": "control.forEach",
            "items": "[10, 20, 30, 40, 50]",
            "concurrency": concurrency,
            "output": "out",
            "result": {"$expr": "vars.done"},
            "steps": [{"id": "n", "type": "state.set", "values": {"x": 1}}],
        }
    )
    block = Pausing(lambda scope: scope.names["item"] == 20)
    with pytest.raises(ContinueAsNew) as paused:
        await EXECUTORS[s.type](s, "/steps/0", 1, ctx(), runtime(block, {}))
    positions = paused.value.positions
    state = positions["/steps/0@"]
    assert state["partial"] == {"1": {"vars": {"seen": 20}, "assigned": ["seen"]}}
    assert 1 not in state["done"] and "/steps/0/steps@1" in positions
    # The next execution: the paused iteration resumes with its own variables.
    c = ctx()
    block = Pausing(lambda scope: False)
    await EXECUTORS[s.type](s, "/steps/0", 1, c, runtime(block, dict(positions)))
    assert c.vars["out"] == [10, 20, 30, 40, 50]
    assert "/steps/0/steps@1" in block.resumed


async def test_parallel_pauses_branches_and_joins_after_resuming() -> None:
    from temporal_workflows.failures import ContinueAsNew

    s = step(
        {
            "id": "p",
            "type": "control.parallel",
            "output": "st",
            "branches": {
                "a": [{"id": "x", "type": "state.set", "values": {"x": 1}}],
                "b": [{"id": "y", "type": "state.set", "values": {"y": 1}}],
            },
        }
    )
    block = Pausing(lambda scope: scope.vars["seen"] == "b")
    with pytest.raises(ContinueAsNew) as paused:
        await EXECUTORS[s.type](s, "/steps/0", 1, ctx(), runtime(block, {}))
    state = paused.value.positions["/steps/0@"]
    assert state["status"] == {"a": {"status": "SUCCEEDED"}}
    assert state["scopes"]["b"] == {"vars": {"seen": "b"}, "assigned": ["seen"]}
    c = ctx()
    block = Pausing(lambda scope: False)
    outcome = await EXECUTORS[s.type](
        s, "/steps/0", 1, c, runtime(block, dict(paused.value.positions))
    )
    assert block.resumed == ["/steps/0/branches/b@"]  # branch a did not run again
    assert outcome.output == {"a": "SUCCEEDED", "b": "SUCCEEDED"}
    assert c.vars["done"] == "b" and c.vars["seen"] == "b"  # joined in branch order


async def test_history_limit_is_not_catchable() -> None:
    s = step(
        {
            "id": "t",
            "type": "control.tryCatch",
            "try": [{"id": "x", "type": "state.set", "values": {"x": 1}}],
            "catch": [{"id": "c", "type": "state.set", "values": {"c": 1}}],
            "finally": [{"id": "f", "type": "state.set", "values": {"f": 1}}],
        }
    )
    ran: list[str] = []

    async def run_block(steps: list[Any], base: str, scope: RunContext) -> None:
        ran.append(base)
        if base.endswith("/try"):
            raise StepFailure("HistoryLimitExceeded", "too long", base, catchable=False)

    with pytest.raises(StepFailure) as failed:
        await EXECUTORS[s.type](s, "/steps/0", 1, ctx(), Runtime(run_block, {}, lambda c: False))
    assert failed.value.type == "HistoryLimitExceeded"
    assert ran == ["/steps/0/try", "/steps/0/finally"]


def test_continue_due_drains_every_block_but_finally() -> None:
    due = [False]
    rt = Runtime(None, {}, lambda c: due[0])  # type: ignore[arg-type]
    assert not rt.continue_due(ctx())
    due[0] = True
    rt.blocked = 1  # inside a finally
    assert not rt.continue_due(ctx()) and not rt.draining
    rt.blocked = 0
    assert rt.continue_due(ctx()) and rt.draining
    due[0] = False
    assert rt.continue_due(ctx())  # the other blocks stop too
    legacy = Runtime(None, {}, lambda c: True, patched=False)  # type: ignore[arg-type]
    assert legacy.continue_due(ctx()) and not legacy.draining


def test_payload_size_is_checked_against_the_run_limit() -> None:
    c = ctx()
    c.inp = c.inp.model_copy(update={"run_limits": RunLimits(max_payload_bytes=2048)})
    assert c.check_size({"a": "x" * 100}, "the input") < 2048
    with pytest.raises(StepFailure) as failed:
        c.check_size({"a": "x" * 4096}, "the input")
    assert failed.value.type == "PayloadTooLarge" and failed.value.catchable
    assert failed.value.details["limit"] == 2048
