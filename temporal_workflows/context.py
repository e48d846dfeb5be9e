"""Interpreter state: one shared part per run, one scope per block of variables.

For-each iterations and parallel branches run in scopes holding their own copy of
``vars``; a try/catch ``catch`` block shares its parent's variables and adds ``error``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter

from expression import EvalContext, ExpressionError, evaluate, resolve
from tempoflow.error_types import ErrorType
from tempoflow.records import (
    DeliveryRecord,
    InvocationRecord,
    ProjectionBatch,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    TaskRecord,
    WaitRecord,
)
from tempoflow.redaction import Redaction
from temporal_workflows.failures import StepFailure
from temporal_workflows.models import RunInput

METERED_BUILTINS_PATCH = "expression-metered-builtins"
"""Runs started before built-ins were metered evaluate without it (replays agree)."""


@dataclass
class Shared:
    """What every scope of one run shares."""

    seq: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    invocations: list[InvocationRecord] = field(default_factory=list)
    """Action outcomes the activity could not record (database unreachable)."""
    redact: list[str] = field(default_factory=list)
    """The definition's ``redact`` pointers; ``redaction`` compiles them."""
    redaction: Redaction = field(default_factory=Redaction)
    run_sent: bool = False
    status: RunStatus = RunStatus.RUNNING
    flush: Callable[[RunStatus], Awaitable[None]] | None = None
    notify: Callable[..., None] | None = None
    """Fires the notification policies of an event (``temporal_workflows.notify``)."""


def parse_target(target: str) -> list[str]:
    """Tokens of a dot path (``a.b``) or a JSON pointer (``/a/b``)."""
    if target.startswith("/"):
        return [t.replace("~1", "/").replace("~0", "~") for t in target[1:].split("/")]
    return target.split(".")


class RunContext:
    """A scope of one run: its variables, extra envelope names and loop position."""

    def __init__(
        self,
        inp: RunInput,
        *,
        workflow_id: str,
        started_at: datetime,
        attempt: int,
        eval_context: EvalContext,
        shared: Shared | None = None,
        vars: dict[str, Any] | None = None,
        names: dict[str, Any] | None = None,
        loop: str | None = None,
    ) -> None:
        self.inp = inp
        self.workflow_id = workflow_id
        self.started_at = started_at
        self.attempt = attempt
        self.vars: dict[str, Any] = vars if vars is not None else {}
        self.names = names or {}
        self.loop = loop
        self.assigned: set[str] = set()
        self.shared = shared or Shared()
        self.meta = {
            "runId": inp.run_id,
            "tenant": inp.tenant,
            "definitionKey": inp.definition_key,
            "definitionVersion": inp.definition_version,
            "startedAt": started_at.isoformat(),
            "attempt": attempt,
        }
        self._eval_context = eval_context

    def payload_size(self, value: Any) -> int:
        """Bytes ``value`` takes as a Temporal payload (what the 2 MB limit counts)."""
        converter = (
            workflow.payload_converter()
            if workflow.in_workflow()
            else pydantic_data_converter.payload_converter
        )
        return sum(p.ByteSize() for p in converter.to_payloads([value]))

    def check_size(self, value: Any, what: str, *, catchable: bool = True) -> int:
        """Fail with ``PayloadTooLarge`` when ``value`` is over the run's payload limit
        (Temporal would refuse the command and wedge the run); returns its size."""
        size = self.payload_size(value)
        limit = self.inp.run_limits.max_payload_bytes
        if size > limit:
            raise StepFailure(
                ErrorType.PAYLOAD_TOO_LARGE,
                f"{what} is {size:,} bytes encoded; the limit is {limit:,}",
                None,
                {"bytes": size, "limit": limit, "what": what},
                catchable=catchable,
            )
        return size

    def pending_size(self) -> int:
        """Bytes of the projection records waiting for the next write."""
        shared = self.shared
        return self.payload_size(
            ProjectionBatch(
                steps=shared.steps,
                waits=shared.waits,
                deliveries=shared.deliveries,
                tasks=shared.tasks,
            )
        )

    @classmethod
    def in_workflow(cls, inp: RunInput) -> RunContext:
        """Bind to the running workflow: its id, start time, clock and random source."""
        info = workflow.info()
        limits = inp.limits
        if limits.metered and not workflow.patched(METERED_BUILTINS_PATCH):
            limits = limits.model_copy(update={"metered": False})
        return cls(
            inp,
            workflow_id=info.workflow_id,
            started_at=inp.started_at or info.start_time,
            attempt=info.attempt,
            eval_context=EvalContext(
                now=workflow.now,
                random=workflow.random().random,
                uuid=lambda: str(workflow.uuid4()),
                limits=limits,
            ),
        )

    def child(
        self, *, names: dict[str, Any], loop: str | None = None, isolated: bool = True
    ) -> RunContext:
        """A nested scope: isolated (a copy of vars) or sharing them (adding names only)."""
        scope = RunContext(
            self.inp,
            workflow_id=self.workflow_id,
            started_at=self.started_at,
            attempt=self.attempt,
            eval_context=self._eval_context,
            shared=self.shared,
            vars=dict(self.vars) if isolated else self.vars,
            names={**self.names, **names},
            loop=loop if loop is not None else self.loop,
        )
        if not isolated:
            scope.assigned = self.assigned
        return scope

    def loop_label(self, index: int) -> str:
        return f"{self.loop}.{index}" if self.loop else str(index)

    # -- expressions -------------------------------------------------------------------
    def envelope(self) -> dict[str, Any]:
        return {"payload": self.inp.input, "vars": self.vars, "meta": self.meta, **self.names}

    def evaluate(self, expression: str, path: str) -> Any:
        """Evaluate one expression; failures become a catchable ``ExpressionError``."""
        try:
            return evaluate(expression, self.envelope(), self._eval_context)
        except ExpressionError as err:
            # The enclosing step fills in its own path; ``details.path`` is the expression's.
            raise StepFailure(
                ErrorType.EXPRESSION_ERROR,
                f"{err.code}: {err.message}",
                None,
                err.with_path(path).to_dict(),
            ) from None

    def resolve(self, value: Any, path: str) -> Any:
        """Resolve every ``{"$expr": …}`` inside ``value``."""
        return resolve(value, self.evaluate, path)

    # -- variables ---------------------------------------------------------------------
    def set_var(self, target: str, value: Any) -> None:
        """Assign at a dot path or JSON pointer, creating missing parents.

        Containers along the path are copied, never changed in place: scopes that share
        nested values with their parent cannot alter the parent's.
        """
        tokens = parse_target(target)
        self.assigned.add(tokens[0])
        node: Any = self.vars
        for token in tokens[:-1]:
            child = node[int(token)] if isinstance(node, list) else node.get(token)
            child = (
                dict(child)
                if isinstance(child, dict)
                else list(child)
                if isinstance(child, list)
                else {}
            )
            if isinstance(node, list):
                node[int(token)] = child
            else:
                node[token] = child
            node = child
        last = tokens[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise StepFailure(
                ErrorType.TARGET_ERROR, f"cannot assign {target}: not an object", None
            )

    def assigned_values(self) -> dict[str, Any]:
        return {name: self.vars.get(name) for name in sorted(self.assigned)}

    # -- projections -------------------------------------------------------------------
    def next_seq(self) -> int:
        self.shared.seq += 1
        return self.shared.seq

    def step_record(
        self,
        seq: int,
        path: str,
        step: Any,
        status: StepStatus,
        started_at: datetime,
        **fields: Any,
    ) -> StepRecord:
        redaction = self.shared.redaction
        if redaction:
            # Masked here, before the record leaves the workflow: projections never hold
            # the values (the history, which runs the workflow, still does).
            if fields.get("input") is not None:
                fields["input"] = redaction.step_input(fields["input"])
            if fields.get("output") is not None:
                fields["output"] = redaction.step_output(
                    fields["output"],
                    # The variable the step assigns (only an ``output`` declared a target).
                    target=step.output if step.fields.get("output") == "target" else None,
                    keyed=bool(getattr(step, "target_keys", None)),
                    event=getattr(step, "outputs_event", False),
                )
        return StepRecord(
            run_id=self.inp.run_id,
            tenant=self.inp.tenant,
            seq=seq,
            path=path,
            loop=self.loop,
            step_id=step.id,
            type=step.type,
            status=status,
            started_at=started_at,
            **fields,
        )

    def record(self, record: StepRecord) -> None:
        self.shared.steps.append(record)

    def run_record(self, status: RunStatus, **fields: Any) -> RunRecord:
        redaction = self.shared.redaction
        if redaction and fields.get("output") is not None:
            fields["output"] = redaction.run_output(fields["output"])
        return RunRecord(
            run_id=self.inp.run_id,
            tenant=self.inp.tenant,
            workflow_id=self.workflow_id,
            definition_key=self.inp.definition_key,
            definition_version=self.inp.definition_version,
            status=status,
            seq=self.shared.seq,
            input=redaction.payload(self.inp.input),
            started_at=self.started_at,
            parent_run_id=self.inp.parent_run_id,
            parent_step_path=self.inp.parent_step_path,
            trigger=self.inp.trigger,
            **fields,
        )

    def take_pending(self, run: RunRecord | None = None) -> ProjectionBatch:
        """Hand over buffered records; the first batch (and the first after a wait)
        carries the run row with its current status."""
        shared = self.shared
        if run is None and (not shared.run_sent or shared.status != RunStatus.RUNNING):
            shared.status = RunStatus.RUNNING
            run = self.run_record(RunStatus.RUNNING)
        shared.run_sent = True
        batch = ProjectionBatch(
            run=run,
            steps=shared.steps,
            waits=shared.waits,
            deliveries=shared.deliveries,
            tasks=shared.tasks,
            invocations=shared.invocations,
        )
        shared.steps, shared.waits, shared.deliveries, shared.tasks = [], [], [], []
        shared.invocations = []
        return batch

    def notify(self, event: str, step: Any = None, path: str | None = None, **info: Any) -> None:
        """The notification policies on ``event`` of ``step`` (of the run: ``None``)."""
        if self.shared.notify is not None:
            self.shared.notify(self, event, step=step, path=path, **info)

    async def flush(self, status: RunStatus) -> None:
        assert self.shared.flush is not None
        await self.shared.flush(status)

    def idempotency_key(self, path: str) -> str:
        """Stable across retries, worker crashes, continue-as-new and resets of this step."""
        raw = f"{self.inp.tenant}|{self.workflow_id}|{path}|{self.loop or ''}".encode()
        return hashlib.sha256(raw).hexdigest()[:40]
