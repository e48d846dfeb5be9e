"""Named schemas: JSON Schemas stored once per tenant under a ref (``payload.Order.v1``)
and referred to from a definition's ``inputSchema`` (or a ``human.task`` form) and from
an event type's schema as ``{"$ref": "schema:payload.Order.v1"}``.

A reference is *pinned* when the schema that uses it is published (a definition version)
or written (an event type): the named schema is embedded into the referring schema as a
resource whose ``$id`` is ``schema:<ref>`` (under ``$defs``, or ``definitions`` for
drafts 6 and 7), which is standard JSON Schema. The ``$ref`` stays as written, so any
validator resolves it inside the document (no lookup at run time, nothing can change
under a published version) and the dependency stays visible. Pinning is idempotent: a
reference whose resource is already embedded is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tempoflow.jsonpointer import escape

PREFIX = "schema:"
REF = r"^[A-Za-z][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{1,64}){0,7}$"
"""A named schema's ref: dot-separated segments, e.g. ``payload.Order.v1``."""
MAX_REF = 200
RESERVED_SUFFIX = ".json"
"""Refs may not end so: ``/v1/schemas/definition.json`` and the like are served schemas."""
_LEGACY = ("draft-06", "draft-07")
_UNSUPPORTED = ("draft-03", "draft-04")


def is_ref(ref: str) -> bool:
    """A well-formed, unreserved ref."""
    return (
        len(ref) <= MAX_REF
        and re.fullmatch(REF, ref) is not None
        and not ref.endswith(RESERVED_SUFFIX)
    )


def ref_of(value: Any) -> str | None:
    """The named schema a ``$ref`` value names (``schema:a.b#/x`` → ``a.b``), else None."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return value[len(PREFIX) :].split("#", 1)[0]
    return None


def named_refs(schema: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(JSON pointer of the $ref, ref)`` of every named-schema reference in ``schema``,
    in document order (embedded resources included)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            at = f"{path}/{escape(key)}"
            ref = ref_of(value) if key == "$ref" else None
            if ref is not None:
                yield at, ref
            yield from named_refs(value, at)
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from named_refs(item, f"{path}/{index}")


def embedded_ids(schema: Any) -> set[str]:
    """Every ``$id`` string in ``schema`` (the resources a ``$ref`` may name)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$id" and isinstance(value, str):
                found.add(value)
            found |= embedded_ids(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= embedded_ids(item)
    return found


def unresolved(schema: Any, path: str = "") -> list[tuple[str, str]]:
    """``(pointer, ref)`` of the references whose named schema is not embedded."""
    ids = embedded_ids(schema)
    return [(at, ref) for at, ref in named_refs(schema, path) if PREFIX + ref not in ids]


def container(schema: dict[str, Any]) -> str | None:
    """Where embedded schemas go: ``$defs`` (2019-09 and later, the default),
    ``definitions`` (drafts 6 and 7), ``None`` for drafts 3 and 4 (no ``$id``)."""
    dialect = schema.get("$schema")
    if isinstance(dialect, str):
        if any(d in dialect for d in _UNSUPPORTED):
            return None
        if any(d in dialect for d in _LEGACY):
            return "definitions"
    return "$defs"


def closure(refs: list[str], named: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The named schemas ``refs`` need, transitively (those in ``named``)."""
    found: dict[str, dict[str, Any]] = {}
    todo = list(refs)
    while todo:
        ref = todo.pop()
        if ref in found or ref not in named:
            continue
        found[ref] = named[ref]
        todo += [r for _, r in named_refs(named[ref])]
    return found


def pin(schema: dict[str, Any], named: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """``schema`` with every named schema it refers to (transitively, those found in
    ``named``) embedded; unchanged when there is nothing to embed or nowhere to put it
    (:func:`unresolved` then still lists the references)."""
    missing = [ref for _, ref in unresolved(schema)]
    key = container(schema)
    if not missing or key is None or not isinstance(schema.get(key, {}), dict):
        return schema
    ids = embedded_ids(schema)
    add = {
        PREFIX + ref: {**body, "$id": PREFIX + ref}
        for ref, body in sorted(closure(missing, named).items())
        if PREFIX + ref not in ids
    }
    if not add:
        return schema
    pinned = dict(schema)
    if key == "definitions" and "$ref" in pinned:
        # Drafts 6 and 7 ignore every keyword beside "$ref" (definitions included).
        pinned["allOf"] = [*pinned.get("allOf", []), {"$ref": pinned.pop("$ref")}]
    pinned[key] = {**schema.get(key, {}), **add}
    return pinned
