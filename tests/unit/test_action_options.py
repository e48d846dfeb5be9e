"""Retry policy and timeouts of an action.call: step > definition > action > built-in,
field by field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tempoflow.definition.action_options import parse_defaults, resolve_options
from tempoflow.definition.model import ActionCall, Definition, RetryPolicy


def step(**fields: Any) -> ActionCall:
    return ActionCall.model_validate({"id": "s", "type": "action.call", "action": "a.b", **fields})


DEFINITION = parse_defaults(
    {"retry": {"maxAttempts": 5, "initialInterval": "PT2S"}, "timeouts": {"startToClose": "PT20S"}}
)
DECLARED = parse_defaults(
    {
        "retry": {"maxAttempts": 9, "backoffCoefficient": 3.0, "initialInterval": "PT7S"},
        "timeouts": {"startToClose": "PT40S", "heartbeat": "PT4S"},
    }
)


def test_without_defaults_the_built_ins_apply_as_before() -> None:
    options = resolve_options(step())
    assert options.retry == RetryPolicy()
    assert options.start_to_close == timedelta(minutes=1)
    assert options.schedule_to_close is None and options.heartbeat is None
    # The step's own fields, as before defaults existed.
    options = resolve_options(
        step(timeout="PT5S", timeouts={"heartbeat": "PT1S"}, retry={"maxAttempts": 1})
    )
    assert options.start_to_close == timedelta(seconds=5)
    assert options.heartbeat == timedelta(seconds=1)
    assert options.retry == RetryPolicy(maxAttempts=1)


def test_each_field_comes_from_the_first_level_that_writes_it() -> None:
    options = resolve_options(step(), DEFINITION, DECLARED)
    assert options.retry.maxAttempts == 5  # definition over declaration
    assert options.retry.initialInterval == timedelta(seconds=2)  # definition
    assert options.retry.backoffCoefficient == 3.0  # declaration
    assert options.retry.maxInterval == RetryPolicy().maxInterval  # built-in
    assert options.start_to_close == timedelta(seconds=20)  # definition
    assert options.heartbeat == timedelta(seconds=4)  # declaration

    options = resolve_options(step(retry={"maxAttempts": 2}, timeout="PT3S"), DEFINITION, DECLARED)
    assert options.retry.maxAttempts == 2  # the step wins
    assert options.retry.initialInterval == timedelta(seconds=2)  # the rest still falls through
    assert options.start_to_close == timedelta(seconds=3)  # the step's `timeout`

    options = resolve_options(
        step(timeouts={"startToClose": "PT1S"}, timeout="PT3S"), None, DECLARED
    )
    assert options.start_to_close == timedelta(seconds=1)  # timeouts.startToClose over timeout
    assert options.retry.maxAttempts == 9


def test_a_definition_declares_action_defaults() -> None:
    definition = Definition.model_validate(
        {
            "actionDefaults": {"retry": {"maxAttempts": 4}},
            "steps": [{"id": "s", "type": "action.call", "action": "a.b"}],
        }
    )
    assert definition.actionDefaults is not None
    assert definition.actionDefaults.retry is not None
    assert definition.actionDefaults.retry.model_fields_set == {"maxAttempts"}
