"""The gate's scheduling decisions (pure) and the definition's ``limits``/``priority``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.run_starter import run_priority
from tempoflow.definition import parse_definition
from temporal_workflows.gate import (
    GateRequest,
    GateState,
    add_request,
    gate_id,
    next_grants,
    next_rate_slot,
    release,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = [{"id": "a", "type": "state.set", "values": {"x": 1}}]


def req(wid: str, *, limit: int | None = 2, rate: int | None = None, prio: int = 3) -> GateRequest:
    return GateRequest(workflow_id=wid, max_concurrent=limit, starts_per_minute=rate, priority=prio)


def granted(state: GateState, now: datetime = T0) -> list[str]:
    return [r.workflow_id for r in next_grants(state, now)]


def test_grants_up_to_the_limit_in_request_order() -> None:
    state = GateState()
    for wid in ("a", "b", "c", "d"):
        add_request(state, req(wid))
    assert granted(state) == ["a", "b"]
    assert [r.workflow_id for r in state.queue] == ["c", "d"]
    assert granted(state) == []  # full
    release(state, "b")
    assert granted(state) == ["c"]
    assert set(state.holders) == {"a", "c"}


def test_a_repeated_request_is_queued_once_and_a_holder_is_told_again() -> None:
    state = GateState()
    assert add_request(state, req("a", limit=1)) is False
    assert add_request(state, req("b", limit=1)) is False
    assert add_request(state, req("b", limit=1)) is False
    assert [r.workflow_id for r in state.queue] == ["a", "b"]
    assert granted(state) == ["a"]
    assert add_request(state, req("a", limit=1)) is True  # holds: the grant is resent
    assert [r.workflow_id for r in state.queue] == ["b"]


def test_releasing_a_queued_run_frees_nothing_it_does_not_hold() -> None:
    state = GateState()
    for wid in ("a", "b", "c"):
        add_request(state, req(wid, limit=1))
    assert granted(state) == ["a"]
    release(state, "b")  # cancelled while queued
    assert set(state.holders) == {"a"}
    assert granted(state) == []
    release(state, "a")
    assert granted(state) == ["c"]


def test_priority_goes_first_then_request_order() -> None:
    state = GateState()
    add_request(state, req("low", limit=1, prio=5))
    add_request(state, req("mid1", limit=1))
    add_request(state, req("high", limit=1, prio=1))
    add_request(state, req("mid2", limit=1))
    order = []
    for _ in range(4):
        order += granted(state)
        release(state, order[-1])
    assert order == ["high", "mid1", "mid2", "low"]


def test_starts_per_minute_is_a_sliding_window() -> None:
    state = GateState()
    for wid in ("a", "b", "c"):
        add_request(state, req(wid, limit=None, rate=2))
    assert granted(state, T0) == ["a", "b"]
    assert next_rate_slot(state) == T0 + timedelta(minutes=1)
    assert granted(state, T0 + timedelta(seconds=59)) == []
    assert granted(state, T0 + timedelta(seconds=60)) == ["c"]
    assert next_rate_slot(state) is None  # nobody waits


def test_both_limits_apply() -> None:
    state = GateState()
    for wid in "abcd":
        add_request(state, req(wid, limit=3, rate=2))
    assert granted(state, T0) == ["a", "b"]  # the rate holds
    release(state, "a")
    release(state, "b")
    later = T0 + timedelta(minutes=1)
    assert granted(state, later) == ["c", "d"]


def test_gate_ids_never_look_like_run_ids() -> None:
    assert gate_id("acme", "orders") == "tempoflow-gate/acme/orders"


def test_limits_and_priority_on_the_definition() -> None:
    d = parse_definition(
        {"steps": STEPS, "limits": {"maxConcurrentRuns": 5, "startsPerMinute": 60}, "priority": 1}
    )
    assert d.limits is not None and d.limits.maxConcurrentRuns == 5
    assert d.limits.startsPerMinute == 60 and d.priority == 1
    assert parse_definition({"steps": STEPS}).limits is None


@pytest.mark.parametrize(
    "extra",
    [
        {"limits": {}},
        {"limits": {"maxConcurrentRuns": 0}},
        {"limits": {"startsPerMinute": -1}},
        {"limits": {"maxConcurrent": 5}},
        {"priority": 0},
        {"priority": 6},
    ],
)
def test_bad_limits_are_refused(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_definition({"steps": STEPS, **extra})


def test_priority_becomes_temporal_priority() -> None:
    assert run_priority({"priority": 1}).priority_key == 1
    assert run_priority({}).priority_key is None
