"""How a scenario starts its run: an input, an input file, or what one of the
definition's triggers would start."""

from __future__ import annotations

import uuid
from typing import Any

from expression import EvalContext, ExpressionError, evaluate
from launcher.scenario.model import Loaded, Scenario, read_json
from temporal_workflows.models import EventDelivery


class ScenarioProblem(Exception):
    """The scenario could not be carried out as written (not a failed expectation)."""


def start_fields(loaded: Loaded, scenario: Scenario) -> dict[str, Any]:
    """The run's ``input`` (and ``trigger``) as the scenario starts it."""
    if scenario.inputFile is not None:
        return {"input": read_json(loaded.path.parent / scenario.inputFile)}
    trigger = scenario.trigger
    if trigger is None:
        return {"input": scenario.input}
    if trigger.event is not None:
        event = EventDelivery(
            id=trigger.event.id or f"scenario-event-{uuid.uuid4()}",
            name=trigger.event.name,
            correlation_key=None
            if trigger.event.correlationKey is None
            else str(trigger.event.correlationKey),
            payload=trigger.event.payload,
            received_at=EvalContext.wall_clock().now(),
        )
        return {"input": event.public()}
    name = trigger.schedule or trigger.webhook
    declared = [t for t in loaded.definition.get("triggers") or [] if t.get("name") == name]
    if not declared:
        raise ScenarioProblem(f"the definition has no trigger named {name!r}")
    if trigger.schedule is not None:
        if "schedule" not in declared[0]:
            raise ScenarioProblem(f"trigger {name!r} is not a schedule trigger")
        data = declared[0].get("input")
        return {"input": {} if data is None else data, "trigger": {"schedule": name}}
    hook = declared[0].get("webhook")
    if not isinstance(hook, dict):
        raise ScenarioProblem(f"trigger {name!r} is not a webhook trigger")
    if hook.get("input") is None:
        return {"input": trigger.body}
    headers = {k.lower(): v for k, v in trigger.headers.items()}
    try:
        mapped = evaluate(
            hook["input"], {"body": trigger.body, "headers": headers}, EvalContext.wall_clock()
        )
    except ExpressionError as err:
        raise ScenarioProblem(f"the webhook's input mapping failed: {err}") from None
    return {"input": mapped}
