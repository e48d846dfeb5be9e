"""The definition language (v1) as a pydantic discriminated union on ``type``.

Changing how an existing field parses changes how running workflows replay: add fields
with defaults, never reinterpret old ones (tests/histories/ checks this).

A node type is declared here, once: its model's ``fields`` say which fields hold
expressions, templates, child blocks, assigned variables, fixed values, a JSON Schema or
an action name; ``target_keys`` names the fields whose object keys are assigned
variables; ``scope_names`` the names a field's expressions see. Publish validation
(:mod:`tempoflow.definition.validation`) and :func:`walk_steps` read only these
declarations; the node's executor (``temporal_workflows.nodes.EXECUTORS``) runs it.

To add a node type:

1. its model here (a ``StepBase`` subclass with ``type``, its fields and ``fields``
   declaring every one of them), added to the ``Step`` union (and to the
   ``model_rebuild`` list when it holds steps); a ``nested`` field (objects with fields
   of their own, like ``control.switch`` cases) also overrides ``parts`` and
   ``children``;
2. its executor in ``temporal_workflows/nodes/`` and one entry in ``EXECUTORS``;
3. a runnable example (a ```` ```json example ```` block, run by
   ``tests/integration/test_docs_examples.py``) in ``docs/definition-language.md``, and
   its recorded history: ``TEMPOFLOW_RECORD_HISTORIES=1`` while that test runs writes
   ``tests/histories/docs_example_NN.json`` (replayed by
   ``tests/unit/test_replay_histories.py``).

``tests/unit/test_node_registry.py`` fails until all of these exist; nothing else
names node types. Any change to the models changes the editors' JSON Schema:
``make schemas`` regenerates ``schemas/definition.json`` (``tests/unit/test_schema_export.py``
fails while it is stale).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from croniter import croniter  # at import: the interpreter re-validates in the sandbox
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tempoflow.jsonpointer import escape
from tempoflow.redaction import MAX_POINTER_LENGTH, MAX_POINTERS, POINTER

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
RedactPointer = Annotated[str, Field(pattern=POINTER, max_length=MAX_POINTER_LENGTH)]


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$expr"), str)


class _Model(BaseModel):
    # Attribute docstrings become descriptions in the generated JSON Schema (editors show them).
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, use_attribute_docstrings=True
    )


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


class ActionDefaults(_Model):
    """Retry policy and timeouts for ``action.call`` steps that do not set them.

    Read field by field: a field counts only where it is written, so a step that sets
    ``retry.maxAttempts`` still takes ``initialInterval`` from these defaults
    (:mod:`tempoflow.definition.action_options` merges the levels).
    """

    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None


FieldKind = Literal[
    "jsonata", "template", "steps", "target", "literal", "schema", "action", "nested"
]
"""How a node field is read (publish validation reads this declaration; the node's
executor resolves its ``template`` fields; docs/definition-language.md lists them):

- ``jsonata``: a JSONata string (or an object of them, ``transform.assign``);
- ``template``: any JSON; ``{"$expr": …}`` envelopes anywhere inside are resolved;
- ``steps``: nested steps (a list, or an object of lists for parallel branches);
- ``target``: a variable the step assigns (dot path or JSON pointer);
- ``literal``: fixed at publish time; an envelope there is an error;
- ``schema``: a literal JSON Schema (checked as one at publish time, code
  ``<field>.invalid``);
- ``action``: a literal action name (must be registered at publish time);
- ``nested``: objects with fields of their own (the node's :meth:`parts` reads them).
"""


@dataclass(frozen=True)
class Part:
    """One readable piece of a raw (possibly invalid) step: ``pointer`` is relative to the
    step; ``names`` are envelope names it sees besides ``payload``/``vars``/``meta``."""

    pointer: str
    kind: FieldKind
    value: Any
    names: frozenset[str] = frozenset()


def root_of(target: str) -> str:
    """Top-level variable of a dot path or a JSON pointer target."""
    if target.startswith("/"):
        return target[1:].split("/")[0].replace("~1", "/").replace("~0", "~")
    return target.split(".")[0]


NOTIFY_EVENTS = ("started", "completed", "failed", "waiting")
CHANNEL_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
MAX_NOTIFICATIONS = 10


class Notification(_Model):
    """A notification policy: when ``on`` happens (to the step carrying it, or to the run
    for the definition's own ``notify``), send a message through ``channel``.

    ``to`` and ``template`` are templates over the run envelope (``{"$expr": …}``
    anywhere), which also holds ``notification`` (``event``, ``step``, ``error``,
    ``output``); they are rendered in the workflow. ``{"$secret": name}`` references in
    ``template`` are resolved by the notification activity only. ``retry`` bounds the
    delivery attempts (a notification that still fails is recorded ``FAILED``; the run
    goes on).
    """

    on: Literal["started", "completed", "failed", "waiting"]
    channel: str = Field(pattern=CHANNEL_NAME)
    to: Any
    template: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None


Notify = Annotated[list[Notification], Field(max_length=MAX_NOTIFICATIONS)]


COMMON_FIELDS = frozenset({"type", "id", "name", "notify"})
"""Fields every node type has (``notify`` is validated on its own, for every step)."""


class StepBase(_Model):
    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)
    notify: Notify = Field(default_factory=list)
    """Notification policies of this step (``Notification``); every node type has it."""

    waits: ClassVar[bool] = False
    """The step may wait for something outside the run (an event, a person, an
    operator's decision): ``notify`` may use ``on: waiting``."""

    fields: ClassVar[dict[str, FieldKind]] = {}
    """Every field of the node besides ``type``, ``id`` and ``name``, by its JSON name
    (checked at import: an undeclared field is an error, never silently unvalidated)."""
    scope_names: ClassVar[dict[str, frozenset[str]]] = {}
    """Envelope names a field's expressions or nested steps see besides the usual ones."""
    target_keys: ClassVar[frozenset[str]] = frozenset()
    """Fields that are objects keyed by the variables the step assigns (``target``
    fields assign the variable they name)."""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """``template`` fields whose ``{"$secret": name}`` references the action activity
    resolves (anywhere else a reference is a publish error)."""
    outputs_event: ClassVar[bool] = False
    """The step's output is an event it took (``redact``'s ``/payload`` pointers apply to
    its payload)."""
    references: ClassVar[dict[str, Literal["definition", "event"]]] = {}
    """``literal`` fields naming another definition or event types (a name or a list of
    names): the dependencies a bundle lists and its import checks (``tempoflow.bundle``)."""

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        """Nested blocks: (pointer suffix, steps, names they add to the envelope), read
        from the ``steps`` fields (a list, or an object of lists)."""
        attrs = {f.alias or n: n for n, f in type(self).model_fields.items()}
        literals = {
            field: getattr(self, attrs[field])
            for field, kind in self.fields.items()
            if kind == "literal"
        }
        blocks: list[tuple[str, list[Any], frozenset[str]]] = []
        for field, kind in self.fields.items():
            if kind != "steps":
                continue
            value = getattr(self, attrs[field])
            names = self.names_for(literals, field)
            if isinstance(value, dict):
                blocks += [(f"{field}/{escape(k)}", v, names) for k, v in value.items()]
            else:
                blocks.append((field, value, names))
        return blocks

    @classmethod
    def assigned(cls, raw: dict[str, Any]) -> set[str]:
        """Top-level variables a raw step assigns (as far as they are readable)."""
        found: set[str] = set()
        for field, value in raw.items():
            if cls.fields.get(field) == "target" and isinstance(value, str) and value:
                found.add(root_of(value))
            elif field in cls.target_keys and isinstance(value, dict):
                found |= {root_of(t) for t in value}
        return found

    @classmethod
    def names_for(cls, raw: dict[str, Any], field: str) -> frozenset[str]:
        """Names ``field`` adds to the envelope (from the raw step; defaults if invalid)."""
        return cls.scope_names.get(field, frozenset())

    @classmethod
    def parts(cls, raw: dict[str, Any]) -> Iterator[Part]:
        """The expressions, templates, nested blocks, targets and literals of a raw step,
        as far as they are readable: publish validation reads them even when another
        field of the step is invalid."""
        for field, value in raw.items():
            kind = cls.fields.get(field)
            if kind is None:
                continue  # type, id, name, or an unknown field (a schema error)
            names = cls.names_for(raw, field)
            if kind == "jsonata" and isinstance(value, dict):
                for key, item in value.items():
                    yield Part(f"{field}/{escape(key)}", kind, item, names)
            elif kind == "steps" and isinstance(value, dict):
                for key, item in value.items():
                    yield Part(f"{field}/{escape(key)}", kind, item, names)
            else:
                yield Part(field, kind, value, names)


def _name_or(raw: dict[str, Any], field: str, default: str) -> str:
    value = raw.get(field, default)
    return value if isinstance(value, str) and re.fullmatch(NAME, value) else default


class StateSet(StepBase):
    """Set variables to values; values may contain ``{"$expr": …}`` anywhere."""

    type: Literal["state.set"]
    fields: ClassVar[dict[str, FieldKind]] = {"values": "template"}
    target_keys: ClassVar[frozenset[str]] = frozenset({"values"})
    values: dict[Target, Any] = Field(min_length=1)


class TransformAssign(StepBase):
    """Assign the result of each JSONata expression to a variable."""

    type: Literal["transform.assign"]
    fields: ClassVar[dict[str, FieldKind]] = {"assign": "jsonata"}
    target_keys: ClassVar[frozenset[str]] = frozenset({"assign"})
    assign: dict[Target, Jsonata] = Field(min_length=1)


class ActionCall(StepBase):
    """Run a registered action as a Temporal activity."""

    type: Literal["action.call"]
    waits: ClassVar[bool] = True  # with ``onFailure: ask``
    secret_fields: ClassVar[frozenset[str]] = frozenset({"input"})
    fields: ClassVar[dict[str, FieldKind]] = {
        "action": "action",
        "input": "template",
        "output": "target",
        "timeout": "literal",
        "timeouts": "literal",
        "retry": "literal",
        "idempotencyKey": "jsonata",
        "cancellation": "literal",
        "onFailure": "literal",
    }
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
    onFailure: Literal["fail", "ask"] = "fail"
    """When the action's retries are exhausted: ``fail`` fails the step; ``ask`` makes the
    step (and the run: ``WAITING``) wait for an operator's decision (``retry`` with a
    fresh retry budget, ``skip`` with an output, or ``fail``)."""


class ControlIf(StepBase):
    """Run ``then`` when ``condition`` is truthy, otherwise ``else``."""

    type: Literal["control.if"]
    fields: ClassVar[dict[str, FieldKind]] = {
        "condition": "jsonata",
        "then": "steps",
        "else": "steps",
    }
    condition: Jsonata
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class SwitchCase(_Model):
    when: Jsonata
    steps: list[Step] = Field(min_length=1)


class ControlSwitch(StepBase):
    """Run the steps of the first case whose ``when`` is truthy, else ``default``."""

    type: Literal["control.switch"]
    fields: ClassVar[dict[str, FieldKind]] = {"cases": "nested", "default": "steps"}
    cases: list[SwitchCase] = Field(min_length=1, max_length=100)
    default: list[Step] = Field(default_factory=list)

    @classmethod
    def parts(cls, raw: dict[str, Any]) -> Iterator[Part]:
        for part in super().parts(raw):
            if part.pointer != "cases":
                yield part
            elif isinstance(part.value, list):
                for i, case in enumerate(part.value):
                    if isinstance(case, dict):
                        if "when" in case:
                            yield Part(f"cases/{i}/when", "jsonata", case["when"])
                        if "steps" in case:
                            yield Part(f"cases/{i}/steps", "steps", case["steps"])

    def children(self) -> list[tuple[str, list[Any], frozenset[str]]]:
        blocks: list[tuple[str, list[Any], frozenset[str]]] = [
            (f"cases/{i}/steps", c.steps, frozenset()) for i, c in enumerate(self.cases)
        ]
        return [*blocks, ("default", self.default, frozenset())]


class ControlForEach(StepBase):
    """Run ``steps`` once per item, each iteration in its own copy of ``vars``."""

    type: Literal["control.forEach"]
    fields: ClassVar[dict[str, FieldKind]] = {
        "items": "jsonata",
        "itemName": "literal",
        "indexName": "literal",
        "concurrency": "literal",
        "onItemError": "literal",
        "steps": "steps",
        "result": "template",
        "output": "target",
        "errors": "target",
    }
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

    @classmethod
    def names_for(cls, raw: dict[str, Any], field: str) -> frozenset[str]:
        if field in ("steps", "result"):
            return frozenset(
                {_name_or(raw, "itemName", "item"), _name_or(raw, "indexName", "index")}
            )
        return frozenset()


class ControlParallel(StepBase):
    """Run named branches at once; each works on its own copy of ``vars``."""

    type: Literal["control.parallel"]
    fields: ClassVar[dict[str, FieldKind]] = {
        "branches": "steps",
        "waitFor": "literal",
        "onBranchError": "literal",
        "output": "target",
    }
    branches: dict[Name, list[Step]] = Field(min_length=2, max_length=20)
    waitFor: Literal["all", "any"] = "all"
    onBranchError: Literal["fail", "continue"] = "fail"
    output: Target | None = None
    """Receives ``{branch: {status, error?}}``."""


class ControlTryCatch(StepBase):
    """Run ``try``; on a (listed) error run ``catch``; always run ``finally``."""

    type: Literal["control.tryCatch"]
    fields: ClassVar[dict[str, FieldKind]] = {
        "try": "steps",
        "catch": "steps",
        "catchOn": "literal",
        "errorName": "literal",
        "finally": "steps",
    }
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

    @classmethod
    def names_for(cls, raw: dict[str, Any], field: str) -> frozenset[str]:
        return frozenset({_name_or(raw, "errorName", "error")}) if field == "catch" else frozenset()


class ControlReturn(StepBase):
    """End the run with ``output`` (may contain expressions)."""

    type: Literal["control.return"]
    fields: ClassVar[dict[str, FieldKind]] = {"output": "template"}
    output: Any = None


class ControlCallWorkflow(StepBase):
    """Run another published definition as a child run and wait for it."""

    type: Literal["control.callWorkflow"]
    fields: ClassVar[dict[str, FieldKind]] = {
        "definition": "literal",
        "version": "literal",
        "input": "template",
        "output": "target",
        "timeout": "literal",
    }
    references: ClassVar[dict[str, Literal["definition", "event"]]] = {"definition": "definition"}
    definition: str = Field(pattern=DEFINITION_KEY)
    version: int | None = Field(default=None, ge=1)
    input: Any = Field(default_factory=dict)
    output: Target | None = None
    timeout: timedelta | None = None
    """Execution timeout of the child run (none by default)."""


class Delay(StepBase):
    """Wait for a ``duration`` (ISO 8601) or ``until`` a timestamp expression."""

    type: Literal["delay"]
    fields: ClassVar[dict[str, FieldKind]] = {"duration": "literal", "until": "jsonata"}
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
    outputs_event: ClassVar[bool] = True
    waits: ClassVar[bool] = True
    fields: ClassVar[dict[str, FieldKind]] = {
        "event": "literal",
        "anyOf": "literal",
        "correlationKey": "jsonata",
        "filter": "jsonata",
        "timeout": "literal",
        "onTimeout": "literal",
        "output": "target",
    }
    scope_names: ClassVar[dict[str, frozenset[str]]] = {"filter": frozenset({"event"})}
    references: ClassVar[dict[str, Literal["definition", "event"]]] = {
        "event": "event",
        "anyOf": "event",
    }
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
    waits: ClassVar[bool] = True
    fields: ClassVar[dict[str, FieldKind]] = {
        "title": "template",
        "description": "template",
        "form": "schema",
        "assignee": "template",
        "role": "template",
        "due": "literal",
        "onTimeout": "literal",
        "output": "target",
    }
    title: Any
    """A string, or ``{"$expr": …}``."""
    description: Any = None
    form: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    assignee: Any = None
    """Who should do it (a string or an expression); informational, used by task lists."""
    role: Any = None
    """The role that should do it (a string up to 64 characters, or an expression)."""
    due: timedelta | None = None
    onTimeout: Literal["fail", "continue"] = "fail"
    output: Target | None = None
    """Receives ``{taskId, data, completedBy, completedAt}``."""

    @field_validator("role")
    @classmethod
    def _role(cls, value: Any) -> Any:
        if value is None or _is_envelope(value):
            return value
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError('role must be a string of up to 64 characters or {"$expr": …}')
        return value


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


def type_of(model: type[StepBase]) -> str:
    """The node ``type`` a model parses (its ``type`` literal)."""
    return str(typing.get_args(model.model_fields["type"].annotation)[0])


NODE_MODELS: dict[str, type[StepBase]] = {
    type_of(model): model for model in typing.get_args(typing.get_args(Step)[0])
}
"""The model of each node ``type``, read from the ``Step`` union itself."""
NODE_TYPES = frozenset(NODE_MODELS)


def _check_declarations() -> None:
    """Every node field is declared in ``fields`` (so validation reads it)."""
    for node_type, model in NODE_MODELS.items():
        names = {f.alias or n for n, f in model.model_fields.items()} - COMMON_FIELDS
        if names != set(model.fields):
            raise TypeError(f"{node_type}: fields {sorted(names ^ set(model.fields))} undeclared")
        if not set(model.scope_names) | model.target_keys <= names:
            raise TypeError(f"{node_type}: scope_names or target_keys name unknown fields")


_check_declarations()


TRIGGER_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
OVERLAP_POLICIES = ("skip", "bufferOne", "bufferAll", "allowAll", "cancelOther", "terminateOther")
MIN_INTERVAL = timedelta(seconds=10)
MAX_SPAN = timedelta(days=366)
MAX_JITTER = timedelta(days=1)
MIN_CATCHUP = timedelta(seconds=10)  # Temporal's own minimum
CRON_FIELDS = 5


def check_cron(expression: str) -> str:
    """A standard five-field cron expression (minute hour day-of-month month day-of-week)."""
    if len(expression.split()) != CRON_FIELDS or not croniter.is_valid(expression):
        raise ValueError(
            f"{expression!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
        )
    return expression


def check_timezone(name: str) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. 'Europe/Berlin')") from None
    return name


class Schedule(_Model):
    """When a schedule trigger starts runs: a cron expression or an interval (exactly one),
    evaluated in ``timezone``; what happens when a run is still open at the next time
    (``overlap``); how late a missed time may still start (``catchupWindow``); a random
    delay per start (``jitter``); optional bounds (``startAt``, ``endAt``)."""

    cron: str | None = Field(default=None, min_length=1, max_length=128)
    interval: timedelta | None = Field(default=None, ge=MIN_INTERVAL, le=MAX_SPAN)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    overlap: Literal[
        "skip", "bufferOne", "bufferAll", "allowAll", "cancelOther", "terminateOther"
    ] = "skip"
    catchupWindow: timedelta | None = Field(default=None, ge=MIN_CATCHUP, le=MAX_SPAN)
    jitter: timedelta | None = Field(default=None, ge=timedelta(0), le=MAX_JITTER)
    startAt: AwareDatetime | None = None
    endAt: AwareDatetime | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _one_spec(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule has exactly one of 'cron' and 'interval'")
        if self.startAt and self.endAt and self.endAt <= self.startAt:
            raise ValueError("'endAt' must be after 'startAt'")
        return self


class SecretRef(_Model):
    """``{"$secret": "name"}``: a secret of the tenant's store, resolved server-side."""

    secret: Annotated[str, Field(alias="$secret", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class Webhook(_Model):
    """An inbound webhook (``POST /v1/hooks/{hookId}``): how calls are verified and
    mapped to the run input (``input``: an expression over ``body`` and ``headers``;
    the body itself without one)."""

    signature: Literal["standard", "github"] = "standard"
    secrets: list[SecretRef] = Field(min_length=1, max_length=2)
    """One secret, or two while rotating (a call signed with either is accepted)."""
    tolerance: timedelta = Field(
        default=timedelta(minutes=5), ge=timedelta(seconds=1), le=timedelta(hours=1)
    )
    """Standard Webhooks: how far ``webhook-timestamp`` may be from the server's clock."""
    input: Jsonata | None = None


class Trigger(_Model):
    """What starts runs of this definition besides the API, exactly one of: an event
    trigger (a run for every event of type ``event`` for which ``filter``, evaluated with
    the event as ``event``, is truthy), a webhook trigger (a run for every verified call
    of ``webhook``; its hook URL stays the same across publications while ``name`` does)
    or a schedule trigger (a Temporal Schedule named ``name`` that starts a run with
    ``input`` at the times ``schedule`` describes)."""

    name: str | None = Field(default=None, pattern=TRIGGER_NAME)
    event: EventName | None = None
    filter: Jsonata | None = None
    webhook: Webhook | None = None
    schedule: Schedule | None = None
    input: Any = None
    """A schedule trigger's run input."""

    @model_validator(mode="after")
    def _kind(self) -> Trigger:
        kinds = [k for k in ("event", "webhook", "schedule") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a trigger has exactly one of 'event', 'webhook' and 'schedule'")
        if self.event is None:
            if self.name is None:
                raise ValueError(f"a {kinds[0]} trigger needs a 'name'")
            if self.filter is not None:
                raise ValueError("'filter' applies to event triggers only")
        if self.schedule is None and "input" in self.model_fields_set:
            raise ValueError(
                "'input' applies to schedule triggers only (an event run's input is the "
                "event; a webhook's is its 'input' mapping)"
            )
        return self


class Retention(_Model):
    """How long Tempoflow keeps the rows of this definition's closed runs (ISO 8601
    duration, at least an hour, at most ten years); the tenant's default otherwise."""

    closedRuns: timedelta = Field(ge=timedelta(hours=1), le=timedelta(days=3650))


class Limits(_Model):
    """Flow control of a definition's runs (``tempoflow.flow``): starts beyond a limit wait,
    in order and durably, with status ``QUEUED`` until a slot frees up."""

    maxConcurrentRuns: int | None = Field(default=None, ge=1, le=10_000)
    """At most this many of the definition's runs (every version) run at once."""
    startsPerMinute: int | None = Field(default=None, ge=1, le=60_000)
    """At most this many of its runs begin in any sliding minute."""

    @model_validator(mode="after")
    def _one_limit(self) -> Limits:
        if self.maxConcurrentRuns is None and self.startsPerMinute is None:
            raise ValueError("set maxConcurrentRuns, startsPerMinute or both")
        return self


class Definition(_Model):
    """A workflow definition: input schema, steps, optional output mapping."""

    schema_uri: str | None = Field(default=None, alias="$schema", max_length=2000)
    """The JSON Schema editors check the file against (``schemas/definition.json``);
    ignored by Tempoflow."""
    schemaVersion: Literal[1] = 1
    description: str | None = Field(default=None, max_length=2000)
    inputSchema: dict[str, Any] | None = None
    steps: list[Step] = Field(min_length=1, max_length=1000)
    output: Any = None
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)
    actionDefaults: ActionDefaults | None = None
    """Retry policy and timeouts of this definition's ``action.call`` steps where the step
    does not set them (they win over the action's declared defaults)."""
    redact: list[RedactPointer] = Field(default_factory=list, max_length=MAX_POINTERS)
    """JSON pointers to mask in the run's records (``tempoflow.redaction``)."""
    retention: Retention | None = None
    """Operational: applies to the runs of every version once this one is the latest."""
    notify: list[Notification] = Field(default_factory=list, max_length=2 * MAX_NOTIFICATIONS)
    """Notification policies of the run: ``started``, ``completed`` (succeeded),
    ``failed``, and ``waiting`` (each time one of its steps starts waiting)."""
    limits: Limits | None = None
    """Flow control: pinned with the version each run runs (``tempoflow.flow``)."""
    priority: int | None = Field(default=None, ge=1, le=5)
    """Temporal task priority of the definition's runs (1 highest, 5 lowest, 3 when
    unset); queued runs of a limited definition are also granted in this order."""


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


def called_actions(definition: Definition) -> Iterator[tuple[str, str]]:
    """``(pointer to the field, action name)`` for every step field naming an action."""
    for path, step, _ in walk_steps(definition.steps):
        attrs = {f.alias or n: n for n, f in type(step).model_fields.items()}
        for field, kind in step.fields.items():
            if kind == "action":
                yield f"{path}/{field}", getattr(step, attrs[field])


def parse_definition(body: Any) -> Definition:
    """Parse a body already validated at publish time."""
    return Definition.model_validate(body)
