"""The definition language (v1) as a pydantic discriminated union on ``type``.

Changing how an existing field parses changes how running workflows replay: add fields
with defaults, never reinterpret old ones (tests/histories/ checks this).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A variable target: a dot path (order.total) or a JSON pointer (/order/total).
TARGET = r"^(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|(?:/(?:[^/~]|~[01])+)+)$"
ACTION_NAME = r"^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$"
DEFINITION_KEY = r"^[a-z0-9][a-z0-9._-]{0,127}$"
EVENT_NAME = r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$"
MAX_CONCURRENCY = 50  # far below Temporal's 2,000 pending activities per execution

Target = Annotated[str, Field(pattern=TARGET, max_length=256)]
Name = Annotated[str, Field(pattern=NAME)]
Jsonata = Annotated[str, Field(min_length=1, max_length=8192)]
EventName = Annotated[str, Field(pattern=EVENT_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicy(_Model):
    """Activity retry policy of an ``action.call`` (Temporal semantics)."""

    maxAttempts: int = Field(default=3, ge=1, le=100)
    initialInterval: timedelta = timedelta(seconds=1)
    backoffCoefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    maxInterval: timedelta = timedelta(seconds=30)
    nonRetryableErrors: list[str] = Field(default_factory=list)


class Timeouts(_Model):
    startToClose: timedelta | None = None
    scheduleToClose: timedelta | None = None
    heartbeat: timedelta | None = None


class StepBase(_Model):
    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        """Nested blocks: (pointer suffix, steps, names they add to the envelope)."""
        return []


class StateSet(StepBase):
    """Set variables to values; values may contain ``{"$expr": …}`` anywhere."""

    type: Literal["state.set"]
    values: dict[Target, Any] = Field(min_length=1)


class TransformAssign(StepBase):
    """Assign the result of each JSONata expression to a variable."""

    type: Literal["transform.assign"]
    assign: dict[Target, Jsonata] = Field(min_length=1)


class ActionCall(StepBase):
    """Run a registered action as a Temporal activity."""

    type: Literal["action.call"]
    action: str = Field(pattern=ACTION_NAME)
    input: dict[str, Any] = Field(default_factory=dict)
    output: Target | None = None
    timeout: timedelta = Field(default=timedelta(minutes=1))
    """Start-to-close timeout of one attempt (``timeouts.startToClose`` wins)."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    idempotencyKey: Jsonata | None = None
    cancellation: Literal["tryCancel", "waitCompleted", "abandon"] = "tryCancel"
    """When the step is cancelled: ``tryCancel`` requests the action's cancellation and
    moves on at once; ``waitCompleted`` waits until the action has acknowledged it (it
    learns of it at its next heartbeat) or ended, so a ``finally`` or ``catch`` after it
    never overlaps it; ``abandon`` does not tell the action."""


class ControlIf(StepBase):
    """Run ``then`` when ``condition`` is truthy, otherwise ``else``."""

    type: Literal["control.if"]
    condition: Jsonata
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        return [("then", self.then, frozenset()), ("else", self.else_, frozenset())]


class SwitchCase(_Model):
    when: Jsonata
    steps: list[Step] = Field(min_length=1)


class ControlSwitch(StepBase):
    """Run the steps of the first case whose ``when`` is truthy, else ``default``."""

    type: Literal["control.switch"]
    cases: list[SwitchCase] = Field(min_length=1, max_length=100)
    default: list[Step] = Field(default_factory=list)

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        blocks: list[tuple[str, list[Any], frozenset[str]]] = [
            (f"cases/{i}/steps", c.steps, frozenset()) for i, c in enumerate(self.cases)
        ]
        return [*blocks, ("default", self.default, frozenset())]


class ControlForEach(StepBase):
    """Run ``steps`` once per item, each iteration in its own copy of ``vars``."""

    type: Literal["control.forEach"]
    items: Jsonata
    itemName: Name = "item"
    indexName: Name = "index"
    concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY)
    onItemError: Literal["fail", "continue"] = "fail"
    steps: list[Step] = Field(min_length=1)
    result: Any = None
    """Each iteration's result (may contain expressions); default: what it assigned."""
    output: Target | None = None
    """Receives the results, in item order (``null`` for failed items)."""
    errors: Target | None = None
    """Receives ``[{index, error}]`` of failed items (with ``onItemError: continue``)."""

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        return [("steps", self.steps, frozenset({self.itemName, self.indexName}))]


class ControlParallel(StepBase):
    """Run named branches at once; each works on its own copy of ``vars``."""

    type: Literal["control.parallel"]
    branches: dict[Name, list[Step]] = Field(min_length=2, max_length=20)
    waitFor: Literal["all", "any"] = "all"
    onBranchError: Literal["fail", "continue"] = "fail"
    output: Target | None = None
    """Receives ``{branch: {status, error?}}``."""

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        return [(f"branches/{name}", steps, frozenset()) for name, steps in self.branches.items()]


class ControlTryCatch(StepBase):
    """Run ``try``; on a (listed) error run ``catch``; always run ``finally``."""

    type: Literal["control.tryCatch"]
    try_: list[Step] = Field(alias="try", min_length=1)
    catch: list[Step] = Field(default_factory=list)
    catchOn: list[str] = Field(default_factory=list)
    """Error types to catch (``ActionError`` types, ``ExpressionError``, ``TimeoutError``…);
    empty catches every error."""
    errorName: Name = "error"
    finally_: list[Step] = Field(default_factory=list, alias="finally")

    @model_validator(mode="after")
    def _needs_handler(self) -> ControlTryCatch:
        if not self.catch and not self.finally_:
            raise ValueError("a tryCatch needs catch or finally steps")
        return self

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        return [
            ("try", self.try_, frozenset()),
            ("catch", self.catch, frozenset({self.errorName})),
            ("finally", self.finally_, frozenset()),
        ]


class ControlReturn(StepBase):
    """End the run with ``output`` (may contain expressions)."""

    type: Literal["control.return"]
    output: Any = None


class ControlCallWorkflow(StepBase):
    """Run another published definition as a child run and wait for it."""

    type: Literal["control.callWorkflow"]
    definition: str = Field(pattern=DEFINITION_KEY)
    version: int | None = Field(default=None, ge=1)
    input: Any = Field(default_factory=dict)
    output: Target | None = None
    timeout: timedelta | None = None
    """Execution timeout of the child run (none by default)."""


class Delay(StepBase):
    """Wait for a ``duration`` (ISO 8601) or ``until`` a timestamp expression."""

    type: Literal["delay"]
    duration: timedelta | None = None
    until: Jsonata | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Delay:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of duration or until")
        return self


class EventWait(StepBase):
    """Wait for an event of a type (or ``anyOf`` types) whose correlation key equals
    ``correlationKey``; optionally only one for which ``filter`` is truthy."""

    type: Literal["event.wait"]
    event: EventName | None = None
    anyOf: list[EventName] | None = Field(default=None, min_length=1, max_length=20)
    correlationKey: Jsonata
    filter: Jsonata | None = None
    """Evaluated with the candidate event as ``event``; falsy skips the event."""
    timeout: timedelta | None = None
    onTimeout: Literal["fail", "continue"] = "fail"
    """``fail`` raises a catchable ``TimeoutError``; ``continue`` assigns ``null``."""
    output: Target | None = None
    """Receives ``{id, name, correlationKey, payload, occurredAt, receivedAt}``."""

    @model_validator(mode="after")
    def _one_of(self) -> EventWait:
        if (self.event is None) == (self.anyOf is None):
            raise ValueError("give exactly one of event or anyOf")
        return self

    def names(self) -> list[str]:
        return [self.event] if self.event is not None else sorted(set(self.anyOf or []))


class HumanTask(StepBase):
    """Create a task for a person and wait until it is completed with data matching
    ``form`` (a JSON Schema), or until ``due`` passes."""

    type: Literal["human.task"]
    title: Any
    """A string, or ``{"$expr": …}``."""
    description: Any = None
    form: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    assignee: Any = None
    """Who should do it (a string or an expression); informational, used by task lists."""
    role: str | None = Field(default=None, max_length=64)
    due: timedelta | None = None
    onTimeout: Literal["fail", "continue"] = "fail"
    output: Target | None = None
    """Receives ``{taskId, data, completedBy, completedAt}``."""


Step = Annotated[
    StateSet
    | TransformAssign
    | ActionCall
    | ControlIf
    | ControlSwitch
    | ControlForEach
    | ControlParallel
    | ControlTryCatch
    | ControlReturn
    | ControlCallWorkflow
    | Delay
    | EventWait
    | HumanTask,
    Field(discriminator="type"),
]
NODE_TYPES = frozenset(
    {
        "state.set",
        "transform.assign",
        "action.call",
        "control.if",
        "control.switch",
        "control.forEach",
        "control.parallel",
        "control.tryCatch",
        "control.return",
        "control.callWorkflow",
        "delay",
        "event.wait",
        "human.task",
    }
)


class Trigger(_Model):
    """Start a run of this definition for every event of type ``event`` (for which
    ``filter``, evaluated with the event as ``event``, is truthy)."""

    event: EventName
    filter: Jsonata | None = None


class Definition(_Model):
    """A workflow definition: input schema, steps, optional output mapping."""

    schemaVersion: Literal[1] = 1
    description: str | None = Field(default=None, max_length=2000)
    inputSchema: dict[str, Any] | None = None
    steps: list[Step] = Field(min_length=1, max_length=1000)
    output: Any = None
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)


for _model in (
    ControlIf,
    SwitchCase,
    ControlSwitch,
    ControlForEach,
    ControlParallel,
    ControlTryCatch,
    Definition,
):
    _model.model_rebuild()


def walk_steps(
    steps: list[Any], path: str = "/steps", names: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Any, frozenset[str]]]:
    """Yield ``(pointer, step, extra envelope names)`` for every step, in document order."""
    for index, step in enumerate(steps):
        here = f"{path}/{index}"
        yield here, step, names
        for suffix, block, added in step.children():
            yield from walk_steps(block, f"{here}/{suffix}", names | added)


def parse_definition(body: Any) -> Definition:
    """Parse a body already validated at publish time."""
    return Definition.model_validate(body)
