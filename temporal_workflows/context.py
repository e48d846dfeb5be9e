"""Per-run interpreter state: variables, expression evaluation, projection buffer."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from temporalio import workflow

from expression import EvalContext, ExpressionError, evaluate, resolve
from projections.records import ProjectionBatch, RunRecord, RunStatus, StepRecord, StepStatus
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import RunInput


class RunContext:
    """Everything the node executors share for one run."""

    def __init__(
        self,
        inp: RunInput,
        *,
        workflow_id: str,
        started_at: datetime,
        attempt: int,
        eval_context: EvalContext,
    ) -> None:
        self.inp = inp
        self.workflow_id = workflow_id
        self.started_at = started_at
        self.vars: dict[str, Any] = {}
        self.meta = {
            "runId": inp.run_id,
            "tenant": inp.tenant,
            "definitionKey": inp.definition_key,
            "definitionVersion": inp.definition_version,
            "startedAt": started_at.isoformat(),
            "attempt": attempt,
        }
        self._eval_context = eval_context
        self._seq = 0
        self._steps: list[StepRecord] = []
        self._run_sent = False

    @classmethod
    def in_workflow(cls, inp: RunInput) -> RunContext:
        """Bind to the running workflow: its id, start time, clock and random source."""
        info = workflow.info()
        return cls(
            inp,
            workflow_id=info.workflow_id,
            started_at=info.start_time,
            attempt=info.attempt,
            eval_context=EvalContext(
                now=workflow.now,
                random=workflow.random().random,
                uuid=lambda: str(workflow.uuid4()),
                limits=inp.limits,
            ),
        )

    # -- expressions -------------------------------------------------------------------
    def envelope(self) -> dict[str, Any]:
        return {"payload": self.inp.input, "vars": self.vars, "meta": self.meta}

    def evaluate(self, expression: str, path: str) -> Any:
        """Evaluate one expression; failures become a catchable ``ExpressionError``."""
        try:
            return evaluate(expression, self.envelope(), self._eval_context)
        except ExpressionError as err:
            # The enclosing step fills in its own path; ``details.path`` is the expression's.
            raise StepFailure(
                "ExpressionError", f"{err.code}: {err.message}", None, err.with_path(path).to_dict()
            ) from None

    def resolve(self, value: Any, path: str) -> Any:
        """Resolve every ``{"$expr": …}`` inside ``value``."""
        return resolve(value, self.evaluate, path)

    # -- variables ---------------------------------------------------------------------
    def set_var(self, dotted: str, value: Any) -> None:
        """Assign ``value`` at a dot path, creating missing parents."""
        *parents, last = dotted.split(".")
        target = self.vars
        for name in parents:
            child = target.get(name)
            if not isinstance(child, dict):
                child = {}
                target[name] = child
            target = child
        target[last] = value

    # -- projections -------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def step_record(
        self,
        seq: int,
        path: str,
        step: Any,
        status: StepStatus,
        started_at: datetime,
        **fields: Any,
    ) -> StepRecord:
        return StepRecord(
            run_id=self.inp.run_id,
            tenant=self.inp.tenant,
            seq=seq,
            path=path,
            step_id=step.id,
            type=step.type,
            status=status,
            started_at=started_at,
            **fields,
        )

    def record(self, record: StepRecord) -> None:
        self._steps.append(record)

    def run_record(self, status: RunStatus, **fields: Any) -> RunRecord:
        return RunRecord(
            run_id=self.inp.run_id,
            tenant=self.inp.tenant,
            workflow_id=self.workflow_id,
            definition_key=self.inp.definition_key,
            definition_version=self.inp.definition_version,
            status=status,
            seq=self._seq,
            input=self.inp.input,
            started_at=self.started_at,
            **fields,
        )

    def take_pending(self, run: RunRecord | None = None) -> ProjectionBatch:
        """Hand over buffered records; the first batch carries the RUNNING run row."""
        if run is None and not self._run_sent:
            run = self.run_record(RunStatus.RUNNING)
        self._run_sent = True
        batch = ProjectionBatch(run=run, steps=self._steps)
        self._steps = []
        return batch

    def idempotency_key(self, path: str) -> str:
        """Stable across retries, worker crashes and replays of this step."""
        raw = f"{self.inp.tenant}|{self.workflow_id}|{path}".encode()
        return hashlib.sha256(raw).hexdigest()[:40]
