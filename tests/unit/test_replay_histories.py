"""Recorded histories (tests/histories/*.json) replay on the current interpreter.

A change to interpreter behaviour that would break running workflows fails here; guard
it with ``workflow.patched()``. Record new histories with
``TEMPOFLOW_RECORD_HISTORIES=1 make test``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from launcher.worker import sandboxed_runner
from tempoflow.definition import NODE_TYPES, parse_definition, walk_steps
from temporal_workflows.interpreter import InterpreterWorkflow
from temporal_workflows.models import RunInput

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_are_checked_in() -> None:
    assert {p.stem for p in HISTORIES} >= {"every_node_type", "failing_action", "clock_and_random"}


def test_histories_cover_every_node_type() -> None:
    covered: set[str] = set()
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        start = history.events[0].workflow_execution_started_event_attributes
        inp = pydantic_data_converter.payload_converter.from_payloads(
            start.input.payloads, [RunInput]
        )[0]
        definition = parse_definition(inp.definition)
        covered |= {step.type for _, step, _ in walk_steps(definition.steps)}
    assert covered == NODE_TYPES


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    text = path.read_text()  # noqa: ASYNC240 (a small local file)
    history = WorkflowHistory.from_json(path.stem, text)
    replayer = Replayer(
        workflows=[InterpreterWorkflow],
        workflow_runner=sandboxed_runner(),
        data_converter=pydantic_data_converter,
        # No deadlock detector: this checks determinism, and a loaded machine can take
        # longer than its 2 s over one regex-heavy workflow task (metered_builtins).
        debug_mode=True,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
