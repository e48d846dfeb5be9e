"""The definition language (v1): pydantic model and publish-time validation.

The API validates with :func:`validate_definition` before anything is stored as a version;
the interpreter parses the pinned body with :func:`parse_definition`. One module, so the
two can never disagree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from expression import ExpressionError, iter_expressions
from expression.analysis import analyze

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
VAR_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
ACTION_NAME = r"^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$"

VarPath = Annotated[str, Field(pattern=VAR_PATH, max_length=256)]
Jsonata = Annotated[str, Field(min_length=1, max_length=8192)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicy(_Model):
    """Activity retry policy of an ``action.call`` (Temporal semantics)."""

    maxAttempts: int = Field(default=3, ge=1, le=100)
    initialInterval: timedelta = timedelta(seconds=1)
    backoffCoefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    maxInterval: timedelta = timedelta(seconds=30)
    nonRetryableErrors: list[str] = Field(default_factory=list)


class StepBase(_Model):
    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)


class StateSet(StepBase):
    """Set variables to values; values may contain ``{"$expr": …}`` anywhere."""

    type: Literal["state.set"]
    values: dict[VarPath, Any] = Field(min_length=1)


class TransformAssign(StepBase):
    """Assign the result of each JSONata expression to a variable path."""

    type: Literal["transform.assign"]
    assign: dict[VarPath, Jsonata] = Field(min_length=1)


class ActionCall(StepBase):
    """Run a registered action as a Temporal activity."""

    type: Literal["action.call"]
    action: str = Field(pattern=ACTION_NAME)
    input: dict[str, Any] = Field(default_factory=dict)
    output: VarPath | None = None
    timeout: timedelta = Field(default=timedelta(minutes=1))
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class ControlIf(StepBase):
    """Run ``then`` when ``condition`` is truthy, otherwise ``else``."""

    type: Literal["control.if"]
    condition: Jsonata
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class ControlReturn(StepBase):
    """End the run with ``output`` (may contain expressions)."""

    type: Literal["control.return"]
    output: Any = None


Step = Annotated[
    StateSet | TransformAssign | ActionCall | ControlIf | ControlReturn,
    Field(discriminator="type"),
]
NODE_TYPES = frozenset(
    {"state.set", "transform.assign", "action.call", "control.if", "control.return"}
)


class Definition(_Model):
    """A workflow definition: input schema, steps, optional output mapping."""

    schemaVersion: Literal[1] = 1
    description: str | None = Field(default=None, max_length=2000)
    inputSchema: dict[str, Any] | None = None
    steps: list[Step] = Field(min_length=1, max_length=1000)
    output: Any = None


ControlIf.model_rebuild()
Definition.model_rebuild()


class Issue(BaseModel):
    """One validation finding; ``path`` is a JSON pointer into the definition body.

    Errors block publishing; warnings (``severity="warning"``) are reported only.
    """

    path: str
    code: str
    message: str
    hint: str | None = None
    position: int | None = None
    severity: Literal["error", "warning"] = "error"


def content_hash(body: Any) -> str:
    """Stable hash of a JSON body (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_definition(body: Any) -> Definition:
    """Parse a body already validated at publish time."""
    return Definition.model_validate(body)


def _pointer(loc: Iterable[int | str]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc if p not in NODE_TYPES]
    return "/" + "/".join(parts) if parts else ""


def _pydantic_issues(err: ValidationError) -> list[Issue]:
    issues = []
    for e in err.errors():
        loc = [("else" if p == "else_" else p) for p in e["loc"]]
        issues.append(
            Issue(
                path=_pointer(loc),
                code=f"schema.{e['type']}",
                message=e["msg"],
                hint="see docs/definition-language.md for the node types and their fields",
            )
        )
    return issues


def walk_steps(steps: list[Any], path: str = "/steps") -> Iterator[tuple[str, Any]]:
    """Yield ``(pointer, step)`` for every step, depth first, in document order."""
    for index, step in enumerate(steps):
        here = f"{path}/{index}"
        yield here, step
        if isinstance(step, ControlIf):
            yield from walk_steps(step.then, f"{here}/then")
            yield from walk_steps(step.else_, f"{here}/else")


def _check_expression(expr: str, path: str, assigned: set[str], issues: list[Issue]) -> None:
    """Syntax, allowed functions, envelope names; warn on reads of never-assigned vars."""
    try:
        found = analyze(expr)
    except ExpressionError as err:
        issues.append(
            Issue(
                path=path,
                code="expression.invalid",
                message=f"{err.code}: {err.message}",
                position=err.position,
                hint="check the JSONata syntax at the position",
            )
        )
        return
    for finding in found.errors:
        issues.append(
            Issue(
                path=path,
                code=finding.code,
                message=finding.message,
                position=finding.position,
                hint=finding.hint,
            )
        )
    for name, position in found.var_reads:
        if name not in assigned:
            issues.append(
                Issue(
                    path=path,
                    code="expression.unassigned_var",
                    severity="warning",
                    message=f"vars.{name} is read but no earlier step assigns it",
                    position=position,
                    hint="it evaluates to undefined unless a step sets it first",
                )
            )


def _assigned_by(step: Any) -> set[str]:
    """Top-level variable names a step assigns."""
    if isinstance(step, StateSet):
        return {target.split(".")[0] for target in step.values}
    if isinstance(step, TransformAssign):
        return {target.split(".")[0] for target in step.assign}
    if isinstance(step, ActionCall) and step.output:
        return {step.output.split(".")[0]}
    return set()


def _step_expressions(path: str, step: Any) -> Iterator[tuple[str, str]]:
    if isinstance(step, StateSet):
        yield from iter_expressions(step.values, f"{path}/values")
    elif isinstance(step, TransformAssign):
        for target, expr in step.assign.items():
            yield f"{path}/assign/{target}", expr
    elif isinstance(step, ActionCall):
        yield from iter_expressions(step.input, f"{path}/input")
    elif isinstance(step, ControlIf):
        yield f"{path}/condition", step.condition
    elif isinstance(step, ControlReturn):
        yield from iter_expressions(step.output, f"{path}/output")


def validate_definition(body: Any, actions: Iterable[str] | None = None) -> list[Issue]:
    """Return every problem of ``body`` at once: errors (block publishing) and warnings.

    Args:
        body: the JSON definition.
        actions: names of registered actions; ``None`` skips that check.
    """
    try:
        definition = Definition.model_validate(body)
    except ValidationError as err:
        return _pydantic_issues(err)
    issues: list[Issue] = []
    known_actions = set(actions) if actions is not None else None
    seen: dict[str, str] = {}
    assigned: set[str] = set()  # in document order: what an earlier step can have set
    for path, step in walk_steps(definition.steps):
        if step.id in seen:
            issues.append(
                Issue(
                    path=f"{path}/id",
                    code="step.duplicate_id",
                    message=f"step id {step.id!r} is already used at {seen[step.id]}",
                    hint="give every step a unique id",
                )
            )
        else:
            seen[step.id] = path
        if isinstance(step, ActionCall) and known_actions is not None:
            if step.action not in known_actions:
                issues.append(
                    Issue(
                        path=f"{path}/action",
                        code="action.unknown",
                        message=f"action {step.action!r} is not registered",
                        hint="GET /v1/actions lists the registered actions",
                    )
                )
        for expr_path, expr in _step_expressions(path, step):
            _check_expression(expr, expr_path, assigned, issues)
        assigned |= _assigned_by(step)
    for expr_path, expr in iter_expressions(definition.output, "/output"):
        _check_expression(expr, expr_path, assigned, issues)
    if definition.inputSchema is not None:
        try:
            jsonschema.validators.validator_for(definition.inputSchema).check_schema(
                definition.inputSchema
            )
        except jsonschema.SchemaError as err:
            issues.append(
                Issue(
                    path="/inputSchema" + "".join(f"/{p}" for p in err.absolute_path),
                    code="input_schema.invalid",
                    message=err.message,
                    hint="inputSchema must be a valid JSON Schema",
                )
            )
    return issues
