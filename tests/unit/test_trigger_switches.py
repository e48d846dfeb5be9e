"""Trigger routing verdicts: one delivery per definition, a run when any matching
trigger of it is on, otherwise ``DISABLED`` with the reason."""

from __future__ import annotations

from datetime import UTC, datetime

from app.events.triggers import trigger_rows, trigger_run_id
from expression.limits import ExpressionLimits
from projections.models import Event, TriggerSubscription
from projections.triggers import Subscribed, off_reason
from tempoflow.records import DeliveryStatus


def event(amount: int) -> Event:
    return Event(
        tenant="t",
        event_id="e",
        seq=1,
        name="order.created",
        correlation_key=None,
        payload={"amount": amount},
        received_at=datetime.now(UTC),
    )


def sub(
    key: str, position: int, name: str | None, filter: str | None = None
) -> TriggerSubscription:
    return TriggerSubscription(
        tenant="t",
        definition_key=key,
        position=position,
        event_name="order.created",
        filter=filter,
        version=1,
        trigger_name=name,
    )


def verdicts(subs: list[Subscribed], amount: int) -> list[tuple[str, str, str | None]]:
    rows = trigger_rows({("t", "order.created"): subs}, [event(amount)], ExpressionLimits())[1]
    return [(r["definition_key"], r["status"], r["reason"]) for r in rows]


def test_off_reasons_name_the_switch() -> None:
    assert off_reason("k", "big", paused=True, disabled=True) == "definition 'k' is paused"
    assert off_reason("k", "big", False, True) == "trigger 'big' of definition 'k' is disabled"
    assert off_reason("k", "big", False, False) is None


def test_an_enabled_matching_trigger_wins_over_a_disabled_one() -> None:
    off = "trigger 'a' of definition 'k' is disabled"
    subs = [
        Subscribed(sub("k", 0, "a"), off=off),
        Subscribed(sub("k", 1, "b", "event.payload.amount > 10")),
        Subscribed(sub("other", 0, "c"), off="definition 'other' is paused"),
    ]
    # Both of k's triggers match: one run; other's is paused: recorded, nothing started.
    [(key, status, reason), (other, off_status, off_text)] = verdicts(subs, 50)
    assert (key, status, reason) == ("k", DeliveryStatus.PENDING, None)
    assert (other, off_status) == ("other", DeliveryStatus.DISABLED)
    assert off_text is not None and off_text.startswith("definition 'other' is paused")
    assert "not replayed" in off_text
    # Only the disabled one matches: DISABLED, with its reason, under the run id it
    # would have had (so a later routing of the same event cannot start it either).
    [(key, status, reason)] = verdicts(subs[:2], 5)
    assert (key, status) == ("k", DeliveryStatus.DISABLED)
    assert reason is not None and reason.startswith(off)
    rows = trigger_rows({("t", "order.created"): subs[:2]}, [event(5)], ExpressionLimits())[1]
    assert rows[0]["run_id"] == trigger_run_id("t", "k", "e")


def test_a_non_matching_disabled_trigger_records_nothing() -> None:
    subs = [Subscribed(sub("k", 0, "a", "event.payload.amount > 10"), off="x")]
    assert verdicts(subs, 5) == []
