"""Publish-time validation: every problem at once, each with a JSON pointer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ValidationError

from expression import ExpressionError, iter_expressions
from expression.analysis import ENVELOPE_ROOTS, analyze
from tempoflow.definition.model import (
    NODE_TYPES,
    ActionCall,
    ControlCallWorkflow,
    ControlForEach,
    ControlIf,
    ControlParallel,
    ControlReturn,
    ControlSwitch,
    Definition,
    Delay,
    EventWait,
    HumanTask,
    StateSet,
    TransformAssign,
    walk_steps,
)

EVENT_NAMES = frozenset({"event"})
HINT = "see docs/definition-language.md for the node types and their fields"


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


def _pointer(loc: Iterable[int | str]) -> str:
    renamed = {"else_": "else", "try_": "try", "finally_": "finally"}
    parts = [
        str(renamed.get(str(p), p)).replace("~", "~0").replace("/", "~1")
        for p in loc
        if p not in NODE_TYPES
    ]
    return "/" + "/".join(parts) if parts else ""


def _pydantic_issues(err: ValidationError) -> list[Issue]:
    return [
        Issue(path=_pointer(e["loc"]), code=f"schema.{e['type']}", message=e["msg"], hint=HINT)
        for e in err.errors()
    ]


def _root(target: str) -> str:
    """Top-level variable of a dot path or a JSON pointer target."""
    if target.startswith("/"):
        return target[1:].split("/")[0].replace("~1", "/").replace("~0", "~")
    return target.split(".")[0]


def _assigned_by(step: Any) -> set[str]:
    """Top-level variables a step assigns (for the unassigned-read warning)."""
    if isinstance(step, StateSet):
        return {_root(t) for t in step.values}
    if isinstance(step, TransformAssign):
        return {_root(t) for t in step.assign}
    targets = [getattr(step, "output", None), getattr(step, "errors", None)]
    if isinstance(step, ControlParallel):
        for _, steps, _names in step.children():
            for _, inner, _ in walk_steps(steps):
                targets.extend(_assigned_by(inner))
    return {_root(t) for t in targets if isinstance(t, str)}


def _step_expressions(path: str, step: Any) -> Iterator[tuple[str, str, frozenset[str]]]:
    """``(pointer, expression, extra envelope names)`` of one step's own expressions."""
    none: frozenset[str] = frozenset()
    if isinstance(step, StateSet):
        for p, e in iter_expressions(step.values, f"{path}/values"):
            yield p, e, none
    elif isinstance(step, TransformAssign):
        for target, expr in step.assign.items():
            yield f"{path}/assign/{target}", expr, none
    elif isinstance(step, ActionCall):
        for p, e in iter_expressions(step.input, f"{path}/input"):
            yield p, e, none
        if step.idempotencyKey:
            yield f"{path}/idempotencyKey", step.idempotencyKey, none
    elif isinstance(step, ControlIf):
        yield f"{path}/condition", step.condition, none
    elif isinstance(step, ControlSwitch):
        for i, case in enumerate(step.cases):
            yield f"{path}/cases/{i}/when", case.when, none
    elif isinstance(step, ControlForEach):
        yield f"{path}/items", step.items, none
        for p, e in iter_expressions(step.result, f"{path}/result"):
            yield p, e, frozenset({step.itemName, step.indexName})
    elif isinstance(step, ControlReturn | ControlCallWorkflow):
        field = "output" if isinstance(step, ControlReturn) else "input"
        for p, e in iter_expressions(getattr(step, field), f"{path}/{field}"):
            yield p, e, none
    elif isinstance(step, Delay) and step.until:
        yield f"{path}/until", step.until, none
    elif isinstance(step, EventWait):
        yield f"{path}/correlationKey", step.correlationKey, none
        if step.filter:
            yield f"{path}/filter", step.filter, EVENT_NAMES
    elif isinstance(step, HumanTask):
        for field in ("title", "description", "assignee"):
            for p, e in iter_expressions(getattr(step, field), f"{path}/{field}"):
                yield p, e, none


def _check_expression(
    expr: str,
    path: str,
    names: frozenset[str],
    assigned: set[str],
    issues: list[Issue],
    roots: frozenset[str] = ENVELOPE_ROOTS,
) -> None:
    """Syntax, allowed functions, envelope names; warn on reads of never-assigned vars."""
    try:
        found = analyze(expr, roots=roots | names)
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
    for f in found.errors:
        issues.append(
            Issue(path=path, code=f.code, message=f.message, position=f.position, hint=f.hint)
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
    for path, step, names in walk_steps(definition.steps):
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
        if (
            isinstance(step, ActionCall)
            and known_actions is not None
            and step.action not in known_actions
        ):
            issues.append(
                Issue(
                    path=f"{path}/action",
                    code="action.unknown",
                    message=f"action {step.action!r} is not registered",
                    hint="GET /v1/actions lists the registered actions",
                )
            )
        for expr_path, expr, extra in _step_expressions(path, step):
            _check_expression(expr, expr_path, names | extra, assigned, issues)
        assigned |= _assigned_by(step)
    for expr_path, expr in iter_expressions(definition.output, "/output"):
        _check_expression(expr, expr_path, frozenset(), assigned, issues)
    if definition.inputSchema is not None:
        _check_schema(definition.inputSchema, "/inputSchema", "input_schema.invalid", issues)
    for path, step, _names in walk_steps(definition.steps):
        if isinstance(step, HumanTask):
            _check_schema(step.form, f"{path}/form", "form.invalid", issues)
    for index, trigger in enumerate(definition.triggers):
        if trigger.filter:
            # A trigger filter sees only the event: the run does not exist yet.
            path = f"/triggers/{index}/filter"
            _check_expression(trigger.filter, path, frozenset(), set(), issues, roots=EVENT_NAMES)
    return issues


def _check_schema(schema: dict[str, Any], path: str, code: str, issues: list[Issue]) -> None:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        issues.append(
            Issue(
                path=path + "".join(f"/{p}" for p in err.absolute_path),
                code=code,
                message=err.message,
                hint=f"{path.rsplit('/', 1)[-1]} must be a valid JSON Schema",
            )
        )


def instance_errors(validator: Any, data: Any, prefix: str) -> list[dict[str, Any]]:
    """Every JSON Schema violation of ``data`` as ``{path, code, message}`` (``path`` a
    JSON pointer under ``prefix``), in document order."""
    code = prefix.strip("/").rsplit("/", 1)[-1] or "data"
    return [
        {
            "path": prefix + "".join(f"/{p}" for p in e.absolute_path),
            "code": f"{code}.{e.validator}",
            "message": e.message,
        }
        for e in sorted(
            validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]
