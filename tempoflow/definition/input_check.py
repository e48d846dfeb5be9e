"""Publish-time check of an ``action.call`` input against the action's input JSON Schema.

Only the literal parts are known at publish time. Every ``{"$expr": …}`` envelope and
every ``{"$secret": …}`` reference is replaced by a run-time placeholder that every
keyword accepts (so ``type``, ``enum``, ``format``… never complain about it, and a
required property given as an expression is present). Keywords whose verdict at an
enclosing object or array could flip because the placeholder accepts everything
(``not``, ``oneOf``, ``if``/``then``/``else``, ``enum``, ``const``, ``uniqueItems``,
``contains``) are not reported there: such errors are left to the run-time check (the
action activity validates the resolved input with the action's pydantic model). Every
other error is certain whatever the run-time values are, and reported with its JSON
pointer.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing.exceptions import Unresolvable

from tempoflow.jsonpointer import escape
from tempoflow.jsonschema_safe import UnusableSchema, safe_validator, safe_validator_class

MAX_ERRORS = 50
"""Errors reported per step input at most."""

NON_MONOTONIC = frozenset(
    {"not", "oneOf", "if", "then", "else", "enum", "const", "uniqueItems", "contains"}
    | {"minContains", "maxContains", "dependentSchemas", "dependencies"}
)


class _RunTimeValue:
    """A value only the run knows (an expression's result, a secret)."""

    def __repr__(self) -> str:
        return "<run-time value>"


def is_run_time(value: Any) -> bool:
    """An expression envelope or a secret reference."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (isinstance(value.get("$expr"), str) or "$secret" in value)
    )


def _mask(value: Any, path: tuple[Any, ...], found: list[tuple[Any, ...]]) -> Any:
    if is_run_time(value):
        found.append(path)
        return _RunTimeValue()
    if isinstance(value, dict):
        return {k: _mask(v, (*path, k), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, (*path, i), found) for i, v in enumerate(value)]
    return value


def _accepting(check: Any) -> Any:
    def wrapped(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(instance, _RunTimeValue):
            return
        yield from check(validator, value, instance, schema) or ()

    return wrapped


@cache
def _lenient(cls: Any) -> Any:
    return jsonschema.validators.extend(
        cls, {keyword: _accepting(check) for keyword, check in cls.VALIDATORS.items()}
    )


def _uncertain(err: ValidationError, unknown: list[tuple[Any, ...]]) -> bool:
    """Could ``err`` be due to a run-time value (see the module docstring)?"""
    path = tuple(err.absolute_path)
    if any(path[: len(u)] == u for u in unknown):
        return True
    if not any(len(u) > len(path) and u[: len(path)] == path for u in unknown):
        return False
    if NON_MONOTONIC & {p for p in err.absolute_schema_path if isinstance(p, str)}:
        return True
    return any(_uncertain(sub, unknown) for sub in err.context or ())


def input_validator(schema: dict[str, Any]) -> Any:
    """A validator for :func:`input_errors` (reusable for every input of one action)."""
    return safe_validator(schema, _lenient(safe_validator_class(schema)))


def input_errors(
    schema: dict[str, Any], data: Any, validator: Any = None
) -> list[tuple[str, str, str]]:
    """``(pointer relative to the input, keyword, message)`` of every certain error of
    ``data`` against ``schema``, sorted by path (at most :data:`MAX_ERRORS`). A schema
    the safe validator cannot run (a remote ``$ref``, a pattern RE2 refuses) checks
    nothing here; the run-time check still applies. ``validator``: from
    :func:`input_validator` for ``schema``."""
    if is_run_time(data):
        return []
    unknown: list[tuple[Any, ...]] = []
    masked = _mask(data, (), unknown)
    try:
        validator = validator or input_validator(schema)
        errors = [e for e in validator.iter_errors(masked) if not _uncertain(e, unknown)]
    except (UnusableSchema, Unresolvable, jsonschema.SchemaError, RecursionError):
        return []
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    return [
        ("".join(f"/{escape(str(p))}" for p in e.absolute_path), str(e.validator), e.message)
        for e in errors[:MAX_ERRORS]
    ]
