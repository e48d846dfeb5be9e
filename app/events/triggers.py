"""Trigger matching: which definitions an event starts (CPU-bound: filters are
expressions, so this runs off the event loop)."""

from __future__ import annotations

import logging
from typing import Any

from app.events.routing import to_delivery
from app.run_starter import run_id_for
from expression import EvalContext, ExpressionError, evaluate, truthy
from expression.limits import ExpressionLimits
from projections.models import Event
from projections.triggers import Subscribed
from tempoflow.ids import workflow_id
from tempoflow.records import DeliveryStatus

log = logging.getLogger("tempoflow.dispatcher")

Subscriptions = dict[tuple[str, str], list[Subscribed]]
"""Subscriptions by (tenant, event name), each with why it is off (if it is)."""

OFF_REASON = "; events that arrive while a trigger is off start nothing and are not replayed"


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
    sequence: one per definition whose filter the event passes; ``PENDING`` (a run to
    start) when one of its matching triggers is on, else ``DISABLED`` with the reason."""
    return {e.seq: _rows(subscriptions.get((e.tenant, e.name), []), e, limits) for e in events}


def _rows(
    subscriptions: list[Subscribed], event: Event, limits: ExpressionLimits
) -> list[dict[str, Any]]:
    verdict: dict[str, str | None] = {}  # definition -> None (start) or why not
    for item in subscriptions:
        key = item.subscription.definition_key
        if verdict.get(key, "") is None or not matches(item.subscription.filter, event, limits):
            continue  # a trigger of it starts the run already, or this one does not match
        if item.off is None or key not in verdict:
            verdict[key] = item.off
    rows: list[dict[str, Any]] = []
    for key, off in verdict.items():
        run_id = trigger_run_id(event.tenant, key, event.event_id)
        rows.append(
            {
                "tenant": event.tenant,
                "event_id": event.event_id,
                "run_id": run_id,
                "workflow_id": workflow_id(event.tenant, run_id),
                "kind": "trigger",
                "status": DeliveryStatus.PENDING if off is None else DeliveryStatus.DISABLED,
                "step_path": None,
                "definition_key": key,
                "reason": None if off is None else off + OFF_REASON,
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
