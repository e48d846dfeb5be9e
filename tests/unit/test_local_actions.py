"""Local actions: the declaration, its pinning into published versions, the options a
step is scheduled with, and the patch that keeps older histories replaying."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.builtin import default_registry
from activities.registry import ActionContext, ActionRegistry, ActionSpec
from app.routers.definitions import _declared_defaults
from launcher.worker import sandboxed_runner
from tempoflow.definition import parse_definition
from tempoflow.definition.action_options import parse_declared, resolve_options
from tempoflow.definition.model import RetryPolicy, Timeouts
from temporal_workflows.interpreter import InterpreterWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


class Model(BaseModel):
    pass


async def handler(data: Model, ctx: ActionContext) -> Model:
    return data


def test_builtins_that_are_cheap_and_harmless_are_local() -> None:
    registry = default_registry()
    for name in ("core.noop", "core.log"):
        spec = registry.get(name)
        assert spec is not None and spec.local is True and spec.side_effects is False
        assert spec.declared_defaults() == {"local": True}
        assert spec.describe()["local"] is True
    for name in ("http.request", "webhook.send", "email.send"):
        spec = registry.get(name)
        assert spec is not None and spec.local is False  # slow, or heartbeating
        assert "local" not in spec.declared_defaults()


def test_local_is_pinned_with_the_declared_defaults() -> None:
    registry = ActionRegistry()
    registry.action(
        "acme.fast",
        input_model=Model,
        output_model=Model,
        local=True,
        retry=RetryPolicy(maxAttempts=2),
    )(handler)
    registry.action("acme.slow", input_model=Model, output_model=Model)(handler)
    definition = {
        "steps": [
            {"id": "a", "type": "action.call", "action": "acme.fast"},
            {"id": "b", "type": "action.call", "action": "acme.slow"},
        ]
    }
    assert _declared_defaults(definition, registry) == {
        "acme.fast": {"local": True, "retry": {"maxAttempts": 2}}
    }


def test_local_must_be_a_boolean() -> None:
    with pytest.raises(TypeError):
        ActionSpec("acme.x", 1, Model, Model, handler, local="yes")  # type: ignore[arg-type]


def step(**fields: Any) -> Any:
    body = {"id": "s", "type": "action.call", "action": "acme.fast", **fields}
    return parse_definition({"steps": [body]}).steps[0]


def test_parse_declared_reads_local_and_the_defaults() -> None:
    declared, local = parse_declared({"local": True, "timeouts": {"startToClose": "PT5S"}})
    assert local is True
    assert declared is not None and declared.timeouts is not None
    assert declared.timeouts.startToClose == timedelta(seconds=5)
    assert parse_declared({"local": True}) == (parse_declared({})[0], True)
    assert parse_declared(None) == (None, False)
    assert parse_declared({"retry": {"maxAttempts": 3}})[1] is False
    assert parse_declared({"local": "yes"})[1] is False  # only a JSON true


def test_a_heartbeat_timeout_makes_a_local_action_regular() -> None:
    assert resolve_options(step(), local=True).local is True
    assert resolve_options(step(), local=False).local is False
    beat = step(timeouts={"heartbeat": "PT5S"})
    assert resolve_options(beat, local=True).local is False
    declared, local = parse_declared({"local": True, "timeouts": {"heartbeat": "PT9S"}})
    assert resolve_options(step(), None, declared, local=local).local is False
    # Timeouts and retries are the same whichever way the step runs.
    options = resolve_options(
        step(
            timeouts={"startToClose": "PT2S", "scheduleToClose": "PT30S"}, retry={"maxAttempts": 4}
        ),
        local=True,
    )
    assert options.local and options.start_to_close == timedelta(seconds=2)
    assert options.schedule_to_close == timedelta(seconds=30)
    assert options.retry.maxAttempts == 4
    assert Timeouts().heartbeat is None


def _with_local_pins(history_json: str) -> str:
    """The history with its run input pinning every action it calls as local."""
    data = json.loads(history_json)
    attrs = data["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = attrs["input"]["payloads"][0]
    run_input = json.loads(base64.b64decode(payload["data"]))
    names = {
        s["action"]
        for s in json.loads(json.dumps(run_input["definition"]))["steps"]
        if s.get("type") == "action.call"
    }
    assert names  # the history calls actions
    run_input["action_defaults"] = {name: {"local": True} for name in names}
    payload["data"] = base64.b64encode(json.dumps(run_input).encode()).decode()
    return json.dumps(data)


def _replayer() -> Replayer:
    return Replayer(
        workflows=[InterpreterWorkflow],
        workflow_runner=sandboxed_runner(),
        data_converter=pydantic_data_converter,
        debug_mode=True,
    )


async def test_a_history_recorded_before_local_actions_replays_with_them_pinned() -> None:
    """A history recorded with regular activities (no patch marker) replays even when
    its run input pins the actions local: the patch keeps the regular commands."""
    text = (HISTORIES / "docs_example_02.json").read_text()
    recorded = WorkflowHistory.from_json("recorded", text)
    assert "core.noop" in {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in recorded.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    history = WorkflowHistory.from_json("pinned", _with_local_pins(text))
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_history_with_local_actions_replays() -> None:
    text = (HISTORIES / "local_actions.json").read_text()
    history = WorkflowHistory.from_json("local", text)
    assert sum(e.HasField("marker_recorded_event_attributes") for e in history.events) >= 3
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    # Without the pins the same history cannot replay: the run schedules differently.
    data = json.loads(text)
    attrs = data["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = attrs["input"]["payloads"][0]
    run_input = json.loads(base64.b64decode(payload["data"]))
    run_input["action_defaults"] = {}
    payload["data"] = base64.b64encode(json.dumps(run_input).encode()).decode()
    unpinned = WorkflowHistory.from_json("unpinned", json.dumps(data))
    result = await _replayer().replay_workflow(unpinned, raise_on_replay_failure=False)
    assert result.replay_failure is not None
