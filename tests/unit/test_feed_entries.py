"""The feed entries a projection batch adds (projections/feed.py), without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from projections.feed import entries
from tempoflow.records import (
    LogLineRecord,
    ProjectionBatch,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    WaitRecord,
    WaitStatus,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def run(status: RunStatus, seq: int) -> RunRecord:
    return RunRecord(
        run_id="r",
        tenant="t",
        workflow_id="t/r",
        definition_key="d",
        definition_version=1,
        status=status,
        seq=seq,
        started_at=NOW,
    )


def step(seq: int, status: StepStatus, attempt: int = 1, error: dict | None = None) -> StepRecord:
    return StepRecord(
        run_id="r",
        tenant="t",
        seq=seq,
        path=f"/steps/{seq}",
        step_id=f"s{seq}",
        type="action.call",
        status=status,
        attempt=attempt,
        started_at=NOW,
        error=error,
    )


def test_an_open_run_comes_first_a_closed_run_last() -> None:
    line = LogLineRecord(
        tenant="t",
        run_id="r",
        seq=2,
        step_path="/steps/2",
        attempt=1,
        n=1,
        level=20,
        message="hi",
        logged_at=NOW,
    )
    opening = ProjectionBatch(
        run=run(RunStatus.RUNNING, 1), steps=[step(2, StepStatus.RUNNING)], logs=[line]
    )
    assert [e["kind"] for e in entries(opening)] == ["run.status", "log", "step.started"]
    closing = ProjectionBatch(
        run=run(RunStatus.SUCCEEDED, 3),
        steps=[step(3, StepStatus.SUCCEEDED), step(2, StepStatus.SUCCEEDED)],
    )
    kinds = [(e["kind"], e["data"].get("seq")) for e in entries(closing)]
    assert kinds == [("step.completed", 2), ("step.completed", 3), ("run.status", None)]


def test_dedupe_keys_tell_repeats_from_new_facts() -> None:
    batch = ProjectionBatch(
        steps=[
            step(1, StepStatus.RUNNING, attempt=1),
            step(1, StepStatus.RUNNING, attempt=1, error={"type": "Transient"}),
            step(1, StepStatus.RUNNING, attempt=2),
            step(1, StepStatus.FAILED, attempt=2, error={"type": "Transient"}),
        ],
        waits=[
            WaitRecord(
                run_id="r",
                seq=4,
                tenant="t",
                workflow_id="t/r",
                step_path="/steps/4",
                event_names=["paid"],
                correlation_key="o-1",
                status=WaitStatus.MATCHED,
                since=NOW,
            )
        ],
    )
    found = [(e["kind"], e["dedupe"]) for e in entries(batch)]
    assert found == [
        ("step.started", "step:1:started:1"),
        ("step.retrying", "step:1:retrying:1"),
        ("step.started", "step:1:started:2"),
        ("step.failed", "step:1:end"),
        ("wait.closed", "wait:4:end"),
    ]
    # The same run status at the same sequence is one fact; a new sequence is another.
    assert entries(ProjectionBatch(run=run(RunStatus.WAITING, 5)))[0]["dedupe"] == "run:5:WAITING"
