"""Trigger matching: which definitions an event starts (CPU-bound: filters are
expressions, so this runs off the event loop)."""

from __future__ import annotations

import logging
from typing import Any

from app.events.routing import to_delivery
from app.run_starter import run_id_for
from expression import EvalContext, ExpressionError, evaluate, truthy
from expression.limits import ExpressionLimits
from projections.models import Event, TriggerSubscription
from tempoflow.ids import workflow_id
from tempoflow.records import DeliveryStatus

log = logging.getLogger("tempoflow.dispatcher")

Subscriptions = dict[tuple[str, str], list[TriggerSubscription]]
"""Active subscriptions by (tenant, event name)."""


def trigger_key(definition: str, event_id: str) -> str:
    """The idempotency key of a trigger's run: one run per (definition, event)."""
    return f"\x00trigger\x00{definition}\x00{event_id}"


def trigger_run_id(tenant: str, definition: str, event_id: str) -> str:
    """One run per (definition, event): the workflow id deduplicates the start."""
    return run_id_for(tenant, trigger_key(definition, event_id))


def trigger_rows(
    subscriptions: Subscriptions, events: list[Event], limits: ExpressionLimits
) -> dict[int, list[dict[str, Any]]]:
    """The trigger deliveries (``EventDeliveryRow`` columns) of each event, by inbox
    sequence: one per definition whose filter the event passes."""
    return {e.seq: _rows(subscriptions.get((e.tenant, e.name), []), e, limits) for e in events}


def _rows(
    subscriptions: list[TriggerSubscription], event: Event, limits: ExpressionLimits
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    started: set[str] = set()
    for sub in subscriptions:
        if sub.definition_key in started or not matches(sub.filter, event, limits):
            continue
        started.add(sub.definition_key)
        run_id = trigger_run_id(event.tenant, sub.definition_key, event.event_id)
        rows.append(
            {
                "tenant": event.tenant,
                "event_id": event.event_id,
                "run_id": run_id,
                "workflow_id": workflow_id(event.tenant, run_id),
                "kind": "trigger",
                "status": DeliveryStatus.PENDING,
                "step_path": None,
                "definition_key": sub.definition_key,
                "reason": None,
            }
        )
    return rows


def matches(expression: str | None, event: Event, limits: ExpressionLimits) -> bool:
    """Whether ``event`` passes a trigger filter (a failing filter does not match)."""
    if expression is None:
        return True
    context = EvalContext.wall_clock(limits)
    try:
        return truthy(evaluate(expression, {"event": to_delivery(event).public()}, context))
    except ExpressionError as err:
        log.warning("trigger filter failed for event %s: %s", event.event_id, err)
        return False
