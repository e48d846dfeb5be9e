"""Schedule triggers: publish-time validation, id derivation, the Temporal Schedule built."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy

from app.schedules import (
    build_schedule,
    schedule_id,
    schedule_triggers,
    schedule_workflow_id,
)
from projections.models import DefinitionVersionRow
from tempoflow.definition import validate_definition
from tempoflow.ids import parse_workflow_id
from temporal_workflows.models import RunInput

STEPS = [{"id": "a", "type": "transform.assign", "assign": {"x": "1"}}]


def body(*triggers: dict[str, Any]) -> dict[str, Any]:
    return {"steps": STEPS, "triggers": list(triggers)}


def errors(definition: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.path, i.code) for i in validate_definition(definition) if i.severity == "error"]


def nightly(**schedule: Any) -> dict[str, Any]:
    return {"name": "nightly", "schedule": {"cron": "0 2 * * *", **schedule}}


def test_valid_schedule_triggers_next_to_an_event_trigger() -> None:
    definition = body(
        nightly(timezone="Europe/Berlin", overlap="bufferOne", catchupWindow="PT1H"),
        {"name": "tick", "schedule": {"interval": "PT1M", "jitter": "PT30S"}, "input": {"a": 1}},
        {"event": "order.created"},
    )
    assert errors(definition) == []
    assert [t.name for t in schedule_triggers(definition)] == ["nightly", "tick"]


@pytest.mark.parametrize(
    ("schedule", "path"),
    [
        ({"cron": "0 25 * * *"}, "/triggers/0/schedule/cron"),  # no hour 25
        ({"cron": "* * * *"}, "/triggers/0/schedule/cron"),  # four fields
        ({"cron": "0 2 * * * *"}, "/triggers/0/schedule/cron"),  # seconds field: not ours
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "/triggers/0/schedule/timezone"),
        ({"cron": "0 2 * * *", "timezone": "../etc/passwd"}, "/triggers/0/schedule/timezone"),
        ({"interval": "PT5S"}, "/triggers/0/schedule/interval"),  # below the minimum
        ({"interval": "PT1M", "overlap": "sometimes"}, "/triggers/0/schedule/overlap"),
        ({"interval": "PT1M", "catchupWindow": "PT1S"}, "/triggers/0/schedule/catchupWindow"),
        ({"interval": "PT1M", "jitter": "P2D"}, "/triggers/0/schedule/jitter"),
        ({"interval": "PT1M", "cron": "0 2 * * *"}, "/triggers/0/schedule"),  # both
        ({}, "/triggers/0/schedule"),  # neither
        (
            {
                "interval": "PT1M",
                "startAt": "2027-01-02T00:00:00Z",
                "endAt": "2027-01-01T00:00:00Z",
            },
            "/triggers/0/schedule",
        ),
        ({"interval": "PT1M", "startAt": "2027-01-02T00:00:00"}, "/triggers/0/schedule/startAt"),
    ],
)
def test_bad_schedule_is_an_error_at_its_path(schedule: dict[str, Any], path: str) -> None:
    found = errors(body({"name": "s", "schedule": schedule}))
    assert [p for p, _ in found] == [path], found


def test_trigger_shape_errors() -> None:
    # A schedule trigger needs a name; a filter belongs to event triggers; input to schedules.
    assert [p for p, _ in errors(body({"schedule": {"interval": "PT1M"}}))] == ["/triggers/0"]
    assert [p for p, _ in errors(body({**nightly(), "filter": "true"}))] == ["/triggers/0"]
    assert [p for p, _ in errors(body({"event": "a.b", "input": {}}))] == ["/triggers/0"]
    assert [p for p, _ in errors(body({"name": "x"}))] == ["/triggers/0"]
    assert [p for p, _ in errors(body({**nightly(), "name": "Bad Name"}))] == ["/triggers/0/name"]
    assert errors(body(nightly(), nightly())) == [("/triggers/1/name", "trigger.duplicate_name")]


def test_ids_are_derived_and_run_ids_fit() -> None:
    assert schedule_id("acme", "billing.daily", "nightly") == "tempoflow/acme/billing.daily/nightly"
    wid = schedule_workflow_id("acme", "billing.daily", "nightly")
    assert wid == schedule_workflow_id("acme", "billing.daily", "nightly")  # stable
    assert wid != schedule_workflow_id("acme", "billing.daily", "hourly")
    assert wid != schedule_workflow_id("other", "billing.daily", "nightly")
    assert wid != schedule_workflow_id("acme", "billing.weekly", "nightly")
    # Temporal appends "-<scheduled time>"; the run id is what follows "<tenant>/".
    scheduled = f"{wid}-2026-11-23T02:00:00Z"
    parsed = parse_workflow_id(scheduled)
    assert parsed is not None and parsed[0] == "acme"
    assert len(parsed[1]) <= 36  # a run id's limit (runs.run_id, the API's path)
    long_key = "k" * 128
    assert len(schedule_workflow_id("t" * 64, long_key, "n" * 40).split("/", 1)[1]) + 21 <= 36


def test_built_schedule_starts_the_interpreter_with_the_trigger() -> None:
    definition = body(
        nightly(
            timezone="Europe/Berlin",
            overlap="terminateOther",
            catchupWindow="PT1H",
            jitter="PT30S",
            startAt="2027-01-01T00:00:00Z",
        )
    )
    definition["triggers"][0]["input"] = {"region": "eu"}
    version = DefinitionVersionRow(
        tenant="acme", key="billing", version=3, body=definition, action_defaults={}
    )
    (trigger,) = schedule_triggers(definition)
    schedule = build_schedule(version, trigger, task_queue="q", paused=True)
    assert schedule.spec.cron_expressions == ["0 2 * * *"]
    assert schedule.spec.time_zone_name == "Europe/Berlin"
    assert schedule.spec.jitter == timedelta(seconds=30)
    assert schedule.spec.start_at is not None and schedule.spec.start_at.year == 2027
    assert schedule.policy.overlap == ScheduleOverlapPolicy.TERMINATE_OTHER
    assert schedule.policy.catchup_window == timedelta(hours=1)
    assert schedule.state.paused is True
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.id == schedule_workflow_id("acme", "billing", "nightly")
    assert action.task_queue == "q"
    (arg,) = action.args
    assert isinstance(arg, RunInput)
    assert arg.run_id == ""  # the workflow takes it from its workflow id
    assert arg.trigger == {"schedule": "nightly"}
    assert (arg.definition_key, arg.definition_version, arg.input) == (
        "billing",
        3,
        {"region": "eu"},
    )


def test_interval_schedule_defaults() -> None:
    definition = body({"name": "tick", "schedule": {"interval": "PT1M"}})
    version = DefinitionVersionRow(tenant="t", key="k", version=1, body=definition)
    (trigger,) = schedule_triggers(definition)
    schedule = build_schedule(version, trigger, task_queue="q", paused=False)
    assert [i.every for i in schedule.spec.intervals] == [timedelta(minutes=1)]
    assert schedule.spec.cron_expressions == []
    assert schedule.spec.time_zone_name == "UTC"
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert schedule.state.paused is False


def test_schedule_input_must_match_the_input_schema() -> None:
    schema = {
        "type": "object",
        "required": ["region"],
        "properties": {"region": {"type": "string"}},
    }
    ok = {**body({**nightly(), "input": {"region": "eu"}}), "inputSchema": schema}
    assert errors(ok) == []
    bad = {**body({**nightly(), "input": {"region": 7}}), "inputSchema": schema}
    assert errors(bad) == [("/triggers/0/input/region", "trigger.input_invalid")]
    # Without input the run gets {}: the required field is missing.
    missing = {**body(nightly()), "inputSchema": schema}
    assert errors(missing) == [("/triggers/0/input", "trigger.input_invalid")]


def test_a_disabled_trigger_builds_a_paused_schedule_and_the_pause_note_wins() -> None:
    definition = body({"name": "tick", "schedule": {"interval": "PT1M"}})
    version = DefinitionVersionRow(tenant="t", key="k", version=1, body=definition)
    (trigger,) = schedule_triggers(definition)
    off = build_schedule(version, trigger, task_queue="q", paused=False, disabled=True)
    assert (off.state.paused, off.state.note) == (True, "trigger disabled")
    both = build_schedule(version, trigger, task_queue="q", paused=True, disabled=True)
    assert (both.state.paused, both.state.note) == (True, "definition paused")
    on = build_schedule(version, trigger, task_queue="q", paused=False, disabled=False)
    assert (on.state.paused, on.state.note) == (False, "managed by Tempoflow")
