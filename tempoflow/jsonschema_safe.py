"""JSON Schema validators that are safe on schemas written by API users.

jsonschema's defaults fetch remote ``$ref`` URLs (network I/O from a request, or from a
workflow) and match ``pattern`` / ``patternProperties`` with Python's backtracking ``re``
(``(a+)+$`` freezes the process). These validators resolve ``$ref`` inside the schema
only and match patterns with RE2 (linear time).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import re2
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable

from tempoflow.named_schemas import embedded_ids, ref_of

__all__ = [
    "Unresolvable",
    "UnusableSchema",
    "safe_validator",
    "safe_validator_class",
    "unsafe_parts",
]


class UnusableSchema(ValueError):
    """A schema pattern RE2 cannot run (backreferences, lookaround)."""


@cache
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except re2.error as err:
        raise UnusableSchema(f"pattern {pattern!r} is not supported: {err}") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _regex(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = [_regex(p) for p in schema.get("patternProperties", {})]
    extras = [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        names = ", ".join(repr(e) for e in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


@cache
def _safe_class(cls: Any) -> Any:
    return jsonschema.validators.extend(
        cls,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )


def safe_validator_class(schema: dict[str, Any]) -> Any:
    """The validator class :func:`safe_validator` instantiates (to extend further)."""
    return _safe_class(jsonschema.validators.validator_for(schema))


def safe_validator(schema: dict[str, Any], cls: Any = None) -> Any:
    """A validator for ``schema`` (its draft by ``$schema``) that does no I/O and matches
    patterns in linear time. Validation raises :class:`Unresolvable` for a ``$ref`` outside
    the schema and :class:`UnusableSchema` for a pattern RE2 cannot run. ``cls``: an
    extension of :func:`safe_validator_class` to use instead."""
    return (cls or safe_validator_class(schema))(schema, registry=Registry())


def unsafe_parts(
    schema: Any, path: str = "", ids: frozenset[str] | None = None
) -> list[tuple[str, str]]:
    """What a safe validator would refuse at run time, found when the schema is stored:
    ``(JSON pointer, reason)`` for each ``$ref`` that leaves the schema and each pattern
    RE2 cannot run. A ``$ref`` to a resource embedded in the schema (its ``$id``) stays
    inside it; a named-schema reference (``schema:…``) is not reported here (the caller
    pins or reports it: :mod:`tempoflow.named_schemas`)."""
    if ids is None:
        ids = frozenset(embedded_ids(schema))
    found: list[tuple[str, str]] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            at = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
            if (
                key == "$ref"
                and isinstance(value, str)
                and not value.startswith("#")
                and value.split("#", 1)[0] not in ids
                and ref_of(value) is None
            ):
                found.append((at, f"$ref {value!r} leaves the schema (only '#…' refs resolve)"))
            elif key == "pattern" and isinstance(value, str):
                found += _pattern_problem(at, value)
            elif key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    found += _pattern_problem(at, pattern)
            found += unsafe_parts(value, at, ids)
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            found += unsafe_parts(item, f"{path}/{index}", ids)
    return found


def _pattern_problem(at: str, pattern: str) -> list[tuple[str, str]]:
    try:
        _regex(pattern)
    except UnusableSchema as err:
        return [(at, str(err))]
    return []
