"""Publish-time validation: every problem at once, each with a JSON pointer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import jsonschema
from pydantic import ValidationError

from expression import ExpressionError, is_expr, iter_expressions
from expression.analysis import ENVELOPE_ROOTS, analyze
from tempoflow.definition.input_check import input_errors, input_validator
from tempoflow.definition.model import (
    ACTION_NAME,
    NODE_MODELS,
    NODE_TYPES,
    Definition,
    StepBase,
    escape,
)
from tempoflow.errors import ErrorItem
from tempoflow.jsonschema_safe import Unresolvable, UnusableSchema, safe_validator, unsafe_parts
from tempoflow.named_schemas import container, is_ref, unresolved
from tempoflow.secrets import SECRET_NAME, is_name, iter_references

EVENT_NAMES = frozenset({"event"})
HOOK_NAMES = frozenset({"body", "headers"})
"""What a webhook trigger's ``input`` expression sees."""
NOTIFY_NAMES = frozenset({"notification"})
"""What a notification's ``to`` and ``template`` see besides the run envelope."""
HINT = "see docs/definition-language.md for the node types and their fields"
MAX_EXPRESSION = 8192


class Issue(ErrorItem):
    """One validation finding (an :class:`ErrorItem` with a ``severity``); ``path`` is a
    JSON pointer (RFC 6901) into the definition.

    ``code`` is the finding's code: ``schema.*`` for the structure, ``expression.*`` for
    our checks on expressions, the engine's own code (``S0203``, ``TF1201``…) when an
    expression does not compile, with ``position`` its character offset. Errors block
    publishing; warnings (``severity="warning"``) are reported only.
    """

    severity: Literal["error", "warning"] | None = "error"

    @classmethod
    def from_expression_error(cls, err: ExpressionError, path: str) -> Issue:
        """The one shape of an engine error, at publish time and in the evaluate API."""
        return cls(
            path=path,
            code=err.code,
            message=err.message,
            position=err.position,
            hint=err.hint or "position is the character offset in the expression",
        )


def content_hash(body: Any) -> str:
    """Stable hash of a JSON body (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_RENAMED = {"else_": "else", "try_": "try", "finally_": "finally"}


def _pointer(loc: Iterable[int | str]) -> str:
    """A pydantic error location as a JSON pointer into the body: without the union tags
    pydantic inserts after a step's index and the ``[key]`` marker of dict-key errors
    (the pointer then names the member whose key is wrong)."""
    parts: list[str] = []
    previous: int | str | None = None
    items = list(loc)
    for index, p in enumerate(items):
        if isinstance(previous, int) and isinstance(p, str) and p in NODE_TYPES:
            previous = p
            continue
        if p == "[key]" and index == len(items) - 1:
            continue
        parts.append(escape(_RENAMED.get(str(p), p)))
        previous = p
    return "/" + "/".join(parts) if parts else ""


def _pydantic_issues(err: ValidationError) -> list[Issue]:
    return [
        Issue(path=_pointer(e["loc"]), code=f"schema.{e['type']}", message=e["msg"], hint=HINT)
        for e in err.errors()
    ]


def expression_issues(
    expr: str,
    path: str,
    names: frozenset[str] = frozenset(),
    assigned: set[str] | None = None,
    roots: frozenset[str] = ENVELOPE_ROOTS,
) -> list[Issue]:
    """Syntax, allowed functions, envelope names; warn on reads of never-assigned vars
    (``assigned`` ``None``: no such warnings)."""
    try:
        found = analyze(expr, roots=roots | names)
    except ExpressionError as err:
        return [Issue.from_expression_error(err, path)]
    issues = [
        Issue(path=path, code=f.code, message=f.message, position=f.position, hint=f.hint)
        for f in found.errors
    ]
    if assigned is None:
        return issues
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
    return issues


RawStep = tuple[str, type[StepBase], dict[str, Any], frozenset[str]]


def _raw_steps(steps: Any, path: str, names: frozenset[str]) -> Iterator[RawStep]:
    """Every readable step of a raw body in document order, parsed or not: a step with an
    unknown field (or a broken sibling) still has its expressions and children checked."""
    if not isinstance(steps, list):
        return
    for index, raw in enumerate(steps):
        here = f"{path}/{index}"
        node_type = raw.get("type") if isinstance(raw, dict) else None
        model = NODE_MODELS.get(node_type) if isinstance(node_type, str) else None
        if model is None:
            continue  # not a step at all: the schema error says so
        yield here, model, raw, names
        for part in model.parts(raw):
            if part.kind == "steps":
                yield from _raw_steps(part.value, f"{here}/{part.pointer}", names | part.names)


class _Checker:
    """The semantic pass over the raw body (the schema pass is pydantic's)."""

    def __init__(
        self,
        actions: Iterable[str] | None,
        input_schemas: Mapping[str, dict[str, Any] | None] | None = None,
        channels: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.actions = set(actions) if actions is not None else None
        self.schema_refs: Literal["error", "warning"] = "error"
        self.channels = channels
        self.input_schemas = input_schemas or {}
        self.validators: dict[str, Any] = {}
        self.issues: list[Issue] = []
        self.assigned: set[str] = set()  # in document order: what earlier steps can set
        self.seen: dict[str, str] = {}

    def expression(self, expr: Any, path: str, names: frozenset[str]) -> None:
        if isinstance(expr, str) and 0 < len(expr) <= MAX_EXPRESSION:
            self.issues += expression_issues(expr, path, names, self.assigned)

    def template(self, value: Any, path: str, names: frozenset[str]) -> None:
        for expr_path, expr in iter_expressions(value, path):
            self.expression(expr, expr_path, names)

    def literal(self, value: Any, path: str) -> None:
        for expr_path, _ in iter_expressions(value, path):
            self.issues.append(
                Issue(
                    path=expr_path,
                    code="expression.not_allowed",
                    message="this field is fixed at publish time and takes no expression",
                    hint="the node's table in docs/definition-language.md says which "
                    "fields take expressions",
                )
            )

    def step(
        self, path: str, model: type[StepBase], raw: dict[str, Any], names: frozenset[str]
    ) -> None:
        step_id = raw.get("id")
        if isinstance(step_id, str):
            if step_id in self.seen:
                self.issues.append(
                    Issue(
                        path=f"{path}/id",
                        code="step.duplicate_id",
                        message=f"step id {step_id!r} is already used at {self.seen[step_id]}",
                        hint="give every step a unique id",
                    )
                )
            else:
                self.seen[step_id] = path
        for part in model.parts(raw):
            where = f"{path}/{part.pointer}"
            if part.kind == "jsonata":
                self.expression(part.value, where, names | part.names)
            elif part.kind == "template":
                self.template(part.value, where, names | part.names)
                self.secrets(part.value, where, part.pointer in model.secret_fields)
            elif part.kind != "steps" and part.kind != "nested":
                self.literal(part.value, where)
            if part.kind == "action":
                self.action(part.value, where)
            elif part.kind == "schema" and isinstance(part.value, dict):
                _check_schema(part.value, where, f"{part.pointer}.invalid", self.issues)
                self.issues += schema_ref_issues(part.value, where, self.schema_refs)
        self.action_input(path, model, raw)
        self.assigned |= model.assigned(raw)
        waits = model.waits and (
            model.fields.get("onFailure") is None or raw.get("onFailure") == "ask"
        )
        self.notify(raw.get("notify"), path, names, waits=waits)

    def notify(
        self, policies: Any, path: str, names: frozenset[str], *, waits: bool | None
    ) -> None:
        """A ``notify`` list (of a step, or of the definition: ``waits`` ``None``)."""
        for index, policy in enumerate(policies if isinstance(policies, list) else []):
            if not isinstance(policy, dict):
                continue  # the schema error says so
            where = f"{path}/notify/{index}"
            seen = names | NOTIFY_NAMES
            self.template(policy.get("to"), f"{where}/to", seen)
            self.secrets(policy.get("to"), f"{where}/to", allowed=False)
            self.template(policy.get("template"), f"{where}/template", seen)
            self.secrets(policy.get("template"), f"{where}/template", allowed=True)
            if policy.get("on") == "waiting" and waits is False:
                self.issues.append(
                    Issue(
                        path=f"{where}/on",
                        code="notify.on_unsupported",
                        message="this step never waits for anything outside the run",
                        hint="'waiting' applies to event.wait, human.task and action.call "
                        "with onFailure 'ask' (a delay is the run's own timer), or to the "
                        "definition's notify",
                    )
                )
            channel = policy.get("channel")
            if self.channels is None or not isinstance(channel, str):
                continue
            if channel not in self.channels:
                self.issues.append(
                    Issue(
                        path=f"{where}/channel",
                        code="notify.channel_unknown",
                        message=f"channel {channel!r} is not registered",
                        hint=f"registered channels: {', '.join(sorted(self.channels))}",
                    )
                )
                continue
            template = policy.get("template")
            for key in sorted(self.channels[channel]):
                if isinstance(template, dict) and key not in template:
                    self.issues.append(
                        Issue(
                            path=f"{where}/template",
                            code="notify.template_incomplete",
                            message=f"a {channel} notification's template needs {key!r}",
                            hint="docs/notifications.md lists each channel's template fields",
                        )
                    )

    def action_input(self, path: str, model: type[StepBase], raw: dict[str, Any]) -> None:
        """The literal parts of an action's input against its input schema."""
        action = next((raw.get(f) for f, kind in model.fields.items() if kind == "action"), None)
        schema = self.input_schemas.get(action) if isinstance(action, str) else None
        data = raw.get("input", {})
        if schema is None or model.fields.get("input") != "template" or not isinstance(data, dict):
            return
        assert isinstance(action, str)
        if action not in self.validators:
            self.validators[action] = input_validator(schema)
        for pointer, keyword, message in input_errors(schema, data, self.validators[action]):
            self.issues.append(
                Issue(
                    path=f"{path}/input{pointer}",
                    code=f"action.input.{keyword}",
                    message=message,
                    hint=f"{action}'s input schema is in GET /v1/actions; parts given as "
                    '{"$expr": …} or {"$secret": …} are checked when the step runs',
                )
            )

    def secrets(self, value: Any, path: str, allowed: bool) -> None:
        for ref_path, name in iter_references(value, path):
            if not allowed:
                self.issues.append(
                    Issue(
                        path=ref_path,
                        code="secret.not_allowed",
                        message="only an action's input resolves secret references",
                        hint='use {"$secret": name} inside an action.call input',
                    )
                )
            elif not is_name(name) and not is_expr(name):
                self.issues.append(
                    Issue(
                        path=f"{ref_path}/$secret",
                        code="secret.invalid_name",
                        message=f"a secret name must match {SECRET_NAME}",
                        hint='write {"$secret": "name"} (or an expression giving the name)',
                    )
                )

    def action(self, action: Any, path: str) -> None:
        if (
            self.actions is not None
            and isinstance(action, str)
            and re.fullmatch(ACTION_NAME, action)
            and action not in self.actions
        ):
            self.issues.append(
                Issue(
                    path=path,
                    code="action.unknown",
                    message=f"action {action!r} is not registered",
                    hint="GET /v1/actions lists the registered actions",
                )
            )


def validate_definition(
    body: Any,
    actions: Iterable[str] | None = None,
    input_schemas: Mapping[str, dict[str, Any] | None] | None = None,
    schema_refs: Literal["error", "warning"] = "error",
    channels: Mapping[str, frozenset[str]] | None = None,
) -> list[Issue]:
    """Return every problem of ``body`` at once: errors (block publishing) and warnings.

    The schema errors and the semantic ones (expressions, actions, step ids) come
    together: the semantic checks read every step whose fields they can read, so fixing
    one error never reveals a new round of them.

    Args:
        body: the JSON definition.
        actions: names of registered actions; ``None`` skips that check.
        input_schemas: input JSON Schema per action name: the literal parts of each
            ``action.call`` input are checked against it (codes ``action.input.<keyword>``).
        schema_refs: how a named-schema reference (``{"$ref": "schema:…"}``) that is not
            pinned into ``body`` is reported: ``"error"`` (``schema_ref.unknown``; the
            publish path pins what exists first) or ``"warning"``
            (``schema_ref.unchecked``: offline, where the registry is not at hand).
        channels: the notification channels, each with the template fields it requires;
            ``None`` skips those checks.
    """
    try:
        Definition.model_validate(body)
        issues: list[Issue] = []
    except ValidationError as err:
        issues = _pydantic_issues(err)
    if not isinstance(body, dict):
        return issues
    checker = _Checker(actions, input_schemas, channels)
    checker.schema_refs = schema_refs
    for path, model, raw, names in _raw_steps(body.get("steps"), "/steps", frozenset()):
        checker.step(path, model, raw, names)
    checker.notify(body.get("notify"), "", frozenset(), waits=None)
    checker.template(body.get("output"), "/output", frozenset())
    checker.secrets(body.get("output"), "/output", allowed=False)
    if isinstance(body.get("inputSchema"), dict):
        _check_schema(body["inputSchema"], "/inputSchema", "input_schema.invalid", checker.issues)
        checker.issues += schema_ref_issues(body["inputSchema"], "/inputSchema", schema_refs)
    triggers = body.get("triggers")
    trigger_names: set[str] = set()
    for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
        name = trigger.get("name") if isinstance(trigger, dict) else None
        if isinstance(name, str):
            if name in trigger_names:
                checker.issues.append(
                    Issue(
                        path=f"/triggers/{index}/name",
                        code="trigger.duplicate_name",
                        message=f"another trigger is named {name!r}",
                        hint="trigger names are unique within a definition (a webhook's URL "
                        "and a schedule's id follow its name)",
                    )
                )
            trigger_names.add(name)
        hook = trigger.get("webhook") if isinstance(trigger, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("input"), str):
            # A webhook's input mapping sees only the call: its body and headers.
            path = f"/triggers/{index}/webhook/input"
            if 0 < len(hook["input"]) <= MAX_EXPRESSION:
                checker.issues += expression_issues(
                    hook["input"], path, roots=HOOK_NAMES, assigned=set()
                )
        if isinstance(trigger, dict) and "schedule" in trigger:
            checker.issues += _schedule_input_issues(
                body.get("inputSchema"),
                {} if trigger.get("input") is None else trigger["input"],
                f"/triggers/{index}/input",
            )
        if isinstance(trigger, dict) and isinstance(trigger.get("filter"), str):
            # A trigger filter sees only the event: the run does not exist yet.
            path = f"/triggers/{index}/filter"
            if 0 < len(trigger["filter"]) <= MAX_EXPRESSION:
                checker.issues += expression_issues(
                    trigger["filter"], path, roots=EVENT_NAMES, assigned=set()
                )
    return issues + checker.issues


def _schedule_input_issues(schema: Any, data: Any, path: str) -> list[Issue]:
    """A schedule trigger's input against the definition's ``inputSchema`` (as
    ``POST /v1/runs`` checks a run's input); an unusable schema is reported on its own."""
    if not isinstance(schema, dict):
        return []
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
        if unsafe_parts(schema):
            return []
        errors = instance_errors(safe_validator(schema), data, path)
    except (jsonschema.SchemaError, Unresolvable, UnusableSchema):
        return []  # reported at /inputSchema
    return [
        Issue(
            path=e.path,
            code="trigger.input_invalid",
            message=e.message or "",
            hint="a schedule's input must match the definition's inputSchema",
        )
        for e in errors
    ]


def secret_references(body: Any) -> list[tuple[str, str]]:
    """``(pointer, name)`` of every secret reference with a literal name in the action
    inputs and webhook triggers of ``body`` (a raw definition), in document order."""
    if not isinstance(body, dict):
        return []
    refs = [
        (ref_path, name)
        for path, model, raw, _ in _raw_steps(body.get("steps"), "/steps", frozenset())
        for part in model.parts(raw)
        if part.kind == "template" and part.pointer in model.secret_fields
        for ref_path, name in iter_references(part.value, f"{path}/{part.pointer}")
        if is_name(name)
    ]
    notifying = [("", body)] + [
        (path, raw) for path, _, raw, _ in _raw_steps(body.get("steps"), "/steps", frozenset())
    ]
    for path, holder in notifying:
        policies = holder.get("notify")
        for index, policy in enumerate(policies if isinstance(policies, list) else []):
            if isinstance(policy, dict):
                where = f"{path}/notify/{index}/template"
                refs += [(p, n) for p, n in iter_references(policy.get("template"), where)]
    refs = [(p, n) for p, n in refs if is_name(n)]
    triggers = body.get("triggers")
    for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
        hook = trigger.get("webhook") if isinstance(trigger, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("secrets"), list):
            path = f"/triggers/{index}/webhook/secrets"
            refs += [(p, n) for p, n in iter_references(hook["secrets"], path) if is_name(n)]
    return refs


def unknown_secret_issues(refs: list[tuple[str, str]], existing: set[str]) -> list[Issue]:
    """Warnings for references to secrets the tenant does not have (yet)."""
    return [
        Issue(
            path=path,
            code="secret.unknown",
            severity="warning",
            message=(
                f"secret {name!r} does not exist; the webhook refuses every call signed "
                "with it until it is created"
                if path.startswith("/triggers/")
                else f"secret {name!r} does not exist; the notification is recorded FAILED "
                "(SecretNotFound) unless it is created before it is sent"
                if "/notify/" in path
                else f"secret {name!r} does not exist; the step fails with SecretNotFound "
                "unless it is created before the step runs"
            ),
            hint="PUT /v1/secrets/{name} creates it",
        )
        for path, name in refs
        if name not in existing
    ]


def schema_ref_issues(
    schema: dict[str, Any], path: str, severity: Literal["error", "warning"] = "error"
) -> list[Issue]:
    """The named-schema references of ``schema`` that are not pinned into it."""
    refs = unresolved(schema, path)
    if refs and container(schema) is None:
        return [
            Issue(
                path=f"{path}/$schema",
                code="schema_ref.unsupported_dialect",
                message="named schemas can be referred to from draft 6 or later only",
                hint='drop "$schema" (2020-12 is the default) or use draft-07 or later',
            )
        ]
    if severity == "warning":
        return [
            Issue(
                path=at,
                code="schema_ref.unchecked",
                severity="warning",
                message=f"named schema {ref!r} is looked up when the definition is published",
                hint="offline validation cannot see the server's named schemas; "
                "GET /v1/schemas/{ref} shows one",
            )
            for at, ref in refs
        ]
    return [
        Issue(
            path=at,
            code="schema_ref.unknown",
            message=f"named schema {ref!r} does not exist"
            if is_ref(ref)
            else f"{ref!r} is not a named schema ref (e.g. payload.Order.v1)",
            hint="PUT /v1/schemas/{ref} creates it; GET /v1/schemas lists them",
        )
        for at, ref in refs
    ]


def _check_schema(schema: dict[str, Any], path: str, code: str, issues: list[Issue]) -> None:
    hint = f"{path.rsplit('/', 1)[-1]} must be a valid JSON Schema"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        issues.append(
            Issue(
                path=path + "".join(f"/{escape(p)}" for p in err.absolute_path),
                code=code,
                message=err.message,
                hint=hint,
            )
        )
        return
    issues += [
        Issue(
            path=path + at,
            code=code,
            message=reason,
            hint=hint + " that refers only to itself, with patterns RE2 can run",
        )
        for at, reason in unsafe_parts(schema)
    ]


def instance_errors(validator: Any, data: Any, prefix: str) -> list[ErrorItem]:
    """Every JSON Schema violation of ``data`` (``path`` a JSON pointer under ``prefix``),
    in document order."""
    code = prefix.strip("/").rsplit("/", 1)[-1] or "data"
    return [
        ErrorItem(
            path=prefix + "".join(f"/{escape(p)}" for p in e.absolute_path),
            code=f"{code}.{e.validator}",
            message=e.message,
        )
        for e in sorted(
            validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]
