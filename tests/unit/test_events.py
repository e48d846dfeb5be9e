"""Pure parts of events: key normalization, the routing lock key, the run's mailbox,
correlation derivation and validation of the event nodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.events.ingress import DerivedKeyInvalid, derive_key
from tempoflow.correlation import CorrelationError, lock_key, normalize_key
from tempoflow.definition import validate_definition
from tempoflow.jsonpointer import resolve as resolve_pointer
from tempoflow.settings import Settings
from temporal_workflows.events import MAX_INBOX, MAX_INBOX_BYTES, Mailbox
from temporal_workflows.models import EventDelivery

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(event_id: str, key: str = "k", name: str = "a", at: int = 0) -> EventDelivery:
    return EventDelivery(
        id=event_id, name=name, correlation_key=key, received_at=T0 + timedelta(seconds=at)
    )


@pytest.mark.parametrize(
    ("value", "key"),
    [("o-1", "o-1"), (42, "42"), (42.0, "42"), (4.5, "4.5"), (None, None)],
)
def test_keys_are_canonical_strings(value: object, key: str | None) -> None:
    assert normalize_key(value) == key


@pytest.mark.parametrize("value", [True, False, {"a": 1}, [1], "", "x" * 257, "a\x00b"])
def test_non_scalar_or_empty_keys_are_refused(value: object) -> None:
    with pytest.raises(CorrelationError):
        normalize_key(value)


def test_lock_keys_are_stable_signed_64_bit_and_distinct() -> None:
    a = lock_key("t", "order.paid", "1")
    assert a == lock_key("t", "order.paid", "1")
    assert -(2**63) <= a < 2**63
    assert len({a, lock_key("t2", "order.paid", "1"), lock_key("t", "order.paid", "2")}) == 3
    # The separator keeps (tenant "a", name "b.c") apart from (tenant "a.b", name "c").
    assert lock_key("a", "b.c", "k") != lock_key("a.b", "c", "k")


def test_mailbox_applies_an_event_once() -> None:
    box = Mailbox()
    assert box.deliver(event("e1"))
    assert not box.deliver(event("e1"))  # already waiting in the inbox
    taken = box.pop(["a"], "k")
    assert taken is not None and taken.id == "e1"
    box.applied("e1")
    assert not box.deliver(event("e1"))  # a redelivery after it was applied
    assert box.pop(["a"], "k") is None


def test_mailbox_takes_the_oldest_matching_event_and_keeps_others() -> None:
    box = Mailbox()
    box.deliver(event("late", at=5))
    box.deliver(event("other-key", key="z", at=0))
    box.deliver(event("other-name", name="b", at=0))
    box.deliver(event("early", at=1))
    assert box.has(["a"], "k")
    assert [box.pop(["a"], "k").id, box.pop(["a"], "k").id] == ["early", "late"]  # type: ignore[union-attr]
    assert box.pop(["a", "b"], "k").id == "other-name"  # type: ignore[union-attr]
    assert [e.id for e in box.inbox] == ["other-key"]


def test_mailbox_state_survives_a_restore_and_is_bounded() -> None:
    box = Mailbox()
    box.deliver(event("kept"))
    box.applied("done")
    again = Mailbox()
    again.restore(box.processed, box.inbox)
    assert not again.deliver(event("done"))
    assert again.pop(["a"], "k").id == "kept"  # type: ignore[union-attr]
    refused: list[str] = []
    again.on_refused = lambda e: refused.append(e.id)
    for i in range(MAX_INBOX + 5):
        again.deliver(event(f"e{i}", at=i))
    # Bounded by refusing the newest (recorded, read back later), never by dropping.
    assert len(again.inbox) == MAX_INBOX and again.inbox[0].id == "e0"
    assert refused == [f"e{i}" for i in range(MAX_INBOX, MAX_INBOX + 5)]


def test_a_full_inbox_still_takes_what_a_running_wait_needs() -> None:
    refused: list[str] = []
    box = Mailbox(on_refused=lambda e: refused.append(e.id))
    for i in range(MAX_INBOX):
        box.deliver(event(f"x{i}", key="other", at=i))
    entry = box.want(["a"], "k")
    assert box.deliver(event("needed"))  # over the bound: the wait holds none yet
    assert not box.deliver(event("second"))  # it holds one now: refused
    assert refused == ["second"]
    box.unwant(entry)
    # A registration for "k" may return what the inbox holds of it, plus one at least.
    assert box.budget(["a"], "k")[0] == 1  # the one it holds (no room for more)
    assert box.budget(["a"], "none")[0] == 1


def test_correlation_derivation() -> None:
    settings = Settings(environment="test")
    view = {"id": "1", "name": "n", "payload": {"order": {"id": 7}, "alt": "x"}}
    assert derive_key({"expression": "payload.order.id"}, view, settings) == "7"
    assert derive_key({"paths": ["/payload/missing", "/payload/alt"]}, view, settings) == "x"
    with pytest.raises(DerivedKeyInvalid) as info:  # an object is not a key
        derive_key({"paths": ["/payload/order"]}, view, settings)
    assert info.value.path == "/payload/order"
    with pytest.raises(DerivedKeyInvalid):  # nor a boolean ("1" would be wrong)
        derive_key({"expression": "$exists(payload.alt)"}, view, settings)
    assert derive_key({"expression": "$number('x')"}, view, settings) is None  # error
    assert derive_key(None, view, settings) is None
    assert resolve_pointer({"a": [{"b~/c": 1}]}, "/a/0/b~0~1c") == 1


def test_event_nodes_are_validated() -> None:
    issues = validate_definition(
        {
            "steps": [
                {"id": "w", "type": "event.wait", "correlationKey": "payload.id"},
                {
                    "id": "w2",
                    "type": "event.wait",
                    "anyOf": ["a.b", "c"],
                    "correlationKey": "payload.id",
                    "filter": "event.payload.x and paylod",
                },
                {"id": "h", "type": "human.task", "title": "t", "form": {"type": 5}},
            ],
            "triggers": [{"event": "a.b", "filter": "payload.x"}],
        }
    )
    found = {(i.path, i.code) for i in issues if i.severity == "error"}
    assert ("/steps/0", "schema.value_error") in found  # neither event nor anyOf
    issues = validate_definition(
        {
            "steps": [
                {
                    "id": "w2",
                    "type": "event.wait",
                    "anyOf": ["a.b", "c"],
                    "correlationKey": "payload.id",
                    "filter": "event.payload.x and paylod",
                },
                {"id": "h", "type": "human.task", "title": "t", "form": {"type": 5}},
            ],
            "triggers": [{"event": "a.b", "filter": "payload.x"}],
        }
    )
    found = {(i.path, i.code) for i in issues if i.severity == "error"}
    assert found == {
        ("/steps/0/filter", "expression.unknown_root"),
        ("/steps/1/form/type", "form.invalid"),
        ("/triggers/0/filter", "expression.unknown_root"),
    }


def test_a_continued_run_ignores_redeliveries_that_arrive_before_it_runs() -> None:
    """Signal handlers run before ``run`` in a new execution's first activation: the
    applied ids carried over are restored in ``__init__`` (``@workflow.init``)."""
    from temporal_workflows.interpreter import InterpreterWorkflow
    from temporal_workflows.models import ResumeState, RunInput

    previous = Mailbox()
    previous.applied("e1")
    inp = RunInput(
        run_id="r",
        tenant="t",
        definition_key="d",
        definition_version=1,
        definition={"steps": []},
        resume=ResumeState(vars={}, seq=3, processed_events=previous.processed),
    )
    workflow = InterpreterWorkflow(inp)
    workflow.deliver_event(event("e1"))
    workflow.deliver_event(event("e2"))
    assert [e.id for e in workflow._mailbox.inbox] == ["e2"]


def test_events_received_together_are_taken_in_inbox_order() -> None:
    box = Mailbox()
    same = T0
    for event_id, seq in (("third", 3), ("first", 1), ("second", 2)):
        box.deliver(
            EventDelivery(id=event_id, name="a", correlation_key="k", received_at=same, seq=seq)
        )
    assert [box.pop(["a"], "k").id for _ in range(3)] == ["first", "second", "third"]  # type: ignore[union-attr]


def test_the_inbox_is_bounded_by_payload_bytes() -> None:
    box = Mailbox()
    big = "x" * (MAX_INBOX_BYTES // 4)
    for i in range(6):
        box.deliver(
            EventDelivery(id=f"b{i}", name="a", correlation_key="k", payload=big, received_at=T0)
        )
    assert [e.id for e in box.inbox] == ["b0", "b1", "b2"]  # the newest were refused
