"""The plugin's actions called directly (no servers): fast checks of their behaviour."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError
from tempoflow_example_plugin import (
    GreetInput,
    RecordInput,
    greet,
    record,
    register,
)

from activities.registry import ActionContext, ActionError, ActionRegistry


def context(key: str = "run-1/steps/0") -> ActionContext:
    return ActionContext(
        tenant="acme",
        run_id="run-1",
        workflow_id="acme/run-1",
        step_path="/steps/0",
        step_id="s",
        attempt=1,
        idempotency_key=key,
        logger=logging.getLogger("test"),
    )


async def test_greet() -> None:
    out = await greet(GreetInput(name="Ada"), context())
    assert out.greeting == "Hello, Ada!"
    with pytest.raises(ValidationError):
        GreetInput(name="")


async def test_record_writes_once_per_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPOFLOW_EXAMPLE_OUTBOX", str(tmp_path))
    data = RecordInput(ledger="sales", amount=5, note="first")
    first = await record(data, context("k1"))
    again = await record(data, context("k1"))  # a retried attempt of the same step
    other = await record(data, context("k2"))
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    lines = [json.loads(x) for x in (tmp_path / "sales.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines] == ["k1", "k2"]


async def test_record_without_outbox_fails_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEMPOFLOW_EXAMPLE_OUTBOX", raising=False)
    with pytest.raises(ActionError) as err:
        await record(RecordInput(ledger="x", amount=1), context())
    assert err.value.type == "ExampleNotConfigured" and not err.value.retryable


def test_register_declares_metadata() -> None:
    registry = ActionRegistry()
    register(registry)
    greet_spec, record_spec = registry.get("example.greet"), registry.get("example.record")
    assert greet_spec is not None and record_spec is not None
    assert greet_spec.side_effects is False and record_spec.side_effects is True
    assert greet_spec.declared_defaults() == {
        "retry": {"maxAttempts": 2},
        "timeouts": {"startToClose": "PT10S"},
    }
