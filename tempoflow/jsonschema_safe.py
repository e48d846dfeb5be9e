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

__all__ = ["Unresolvable", "UnusableSchema", "safe_validator"]


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


def safe_validator(schema: dict[str, Any]) -> Any:
    """A validator for ``schema`` (its draft by ``$schema``) that does no I/O and matches
    patterns in linear time. Validation raises :class:`Unresolvable` for a ``$ref`` outside
    the schema and :class:`UnusableSchema` for a pattern RE2 cannot run."""
    cls = jsonschema.validators.validator_for(schema)
    return _safe_class(cls)(schema, registry=Registry())
