"""Named-schema references of a definition: where they are and how they are pinned.

A definition refers to named schemas (``{"$ref": "schema:payload.Order.v1"}``) from its
``inputSchema`` and from the ``schema`` fields of its steps (``human.task`` ``form``).
Publishing pins them (:func:`pin_definition`): the version stores the schemas it was
published with, so its runs never depend on the registry again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from tempoflow.definition.validation import _raw_steps
from tempoflow.named_schemas import named_refs, pin


def _schema_fields(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """``(pointer, holder, key)`` of every schema field of a raw definition."""
    if isinstance(body.get("inputSchema"), dict):
        yield "/inputSchema", body, "inputSchema"
    for path, model, raw, _ in _raw_steps(body.get("steps"), "/steps", frozenset()):
        for field, kind in model.fields.items():
            if kind == "schema" and isinstance(raw.get(field), dict):
                yield f"{path}/{field}", raw, field


def definition_refs(body: Any) -> list[tuple[str, str]]:
    """``(pointer, ref)`` of every named-schema reference in the definition's schemas."""
    if not isinstance(body, dict):
        return []
    return [
        found
        for path, holder, key in _schema_fields(body)
        for found in named_refs(holder[key], path)
    ]


def pin_definition(body: Any, named: Mapping[str, dict[str, Any]]) -> Any:
    """``body`` with the named schemas it refers to embedded into each schema field (the
    same object when it refers to none; references missing from ``named`` stay as they
    are, and validation reports them)."""
    if not definition_refs(body):
        return body
    pinned = copy.deepcopy(body)
    for _, holder, key in list(_schema_fields(pinned)):
        holder[key] = pin(holder[key], named)
    return pinned
