"""Bundle format v1: workflows with their versions, event types and named schemas in one
canonical JSON document, for promoting definitions between environments
(``GET /v1/definitions:export``, ``POST /v1/definitions:import``, ``tempoflow bundle``).

The format is the pydantic model :class:`Bundle` (its JSON Schema is checked into the
repository as ``schemas/bundle.v1.json`` and served at ``GET /v1/schemas/bundle.json``);
``docs/bundles.md`` specifies it. Audit fields (who published, when) and secret values
are never part of it: definitions carry ``{"$secret": name}`` references only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tempoflow.definition.model import DEFINITION_KEY, EVENT_NAME
from tempoflow.definition.validation import _raw_steps
from tempoflow.errors import ErrorItem
from tempoflow.jsonpointer import join

FORMAT = "tempoflow.bundle"
FORMAT_VERSION = 1
"""The newest format version this code reads and writes."""
SCHEMA_PREFIX = "schema:"
"""How a definition or event type schema names a named schema: ``{"$ref": "schema:<ref>"}``."""
STRUCTURAL = frozenset(
    {"$schema", "schemaVersion", "description", "inputSchema", "steps", "output", "triggers"}
)
"""Top-level definition members that are the workflow itself; every other member
(``retention``, ``redact``, ``actionDefaults``, ``limits``…) is an operational setting."""
INT32_MAX = 2**31 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleVersion(_Model):
    """One published version, with its number in the exporting tenant."""

    version: int = Field(ge=1, le=INT32_MAX)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: dict[str, Any]
    actionDefaults: dict[str, Any] | None = None
    """The declared retry/timeout defaults of the actions it calls, pinned at publish."""


class BundleWorkflow(_Model):
    """A definition by its portable key: metadata, the draft and every published version.

    ``settings`` and ``triggers`` are derived (the operational settings and triggers of
    the latest version, or of the draft when nothing is published): they show what the
    workflow does at a glance, and an import refuses a bundle where they disagree with
    the definitions (edit the definitions, not the summary).
    """

    key: str = Field(pattern=DEFINITION_KEY)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    paused: bool = False
    draft: dict[str, Any]
    versions: list[BundleVersion] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    triggers: list[Any] = Field(default_factory=list)
    disabledTriggers: list[str] = Field(default_factory=list)
    """Triggers an operator turned off, by name (sorted): they stay off after the import."""

    @model_validator(mode="after")
    def _ascending(self) -> BundleWorkflow:
        numbers = [v.version for v in self.versions]
        if numbers != sorted(set(numbers)):
            raise ValueError("versions are listed once each, in ascending order")
        return self


class BundleEventType(_Model):
    name: str = Field(pattern=EVENT_NAME)
    description: str | None = Field(default=None, max_length=2000)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    correlation: dict[str, Any] | None = None
    bufferTtlSeconds: int = Field(ge=0, le=7 * 86400)


class BundleSchema(_Model):
    ref: str = Field(min_length=1, max_length=200)
    schema_: dict[str, Any] = Field(alias="schema")


class ActionDependency(_Model):
    name: str
    version: int | None = None
    """The action's version in the exporting API's registry (``None``: not registered)."""


class Dependencies(_Model):
    """What the bundle's definitions need, sorted: every name once."""

    actions: list[ActionDependency] = Field(default_factory=list)
    nodeTypes: list[str] = Field(default_factory=list)
    eventTypes: list[str] = Field(default_factory=list)
    schemas: list[str] = Field(default_factory=list)
    definitions: list[str] = Field(default_factory=list)
    """Child definitions (``control.callWorkflow``)."""


class Bundle(_Model):
    """A bundle of format version 1."""

    model_config = ConfigDict(
        extra="forbid",
        title="Tempoflow bundle",
        json_schema_extra={"$id": "urn:tempoflow:schema:bundle.v1"},
    )

    schema_uri: str | None = Field(
        default=None,
        alias="$schema",
        description="for editors (e.g. ../schemas/bundle.v1.json); ignored, never exported",
    )
    format: Literal["tempoflow.bundle"]
    formatVersion: Literal[1]
    exportedAt: str = Field(description="RFC 3339 time of the export (ignored on import)")
    workflows: list[BundleWorkflow] = Field(default_factory=list)
    eventTypes: list[BundleEventType] = Field(default_factory=list)
    schemas: list[BundleSchema] = Field(default_factory=list)
    dependencies: Dependencies = Field(default_factory=Dependencies)


def canonical_json(value: Any) -> str:
    """Canonical text: sorted keys, 2-space indent, UTF-8 (not escaped), a final newline.
    Written by hand over ``json.dumps`` because these three options are all it takes."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def bundle_json_schema() -> dict[str, Any]:
    """The format's JSON Schema (what ``schemas/bundle.v1.json`` holds)."""
    schema = Bundle.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def settings_of(body: Any) -> dict[str, Any]:
    """The operational settings of a definition body: its non-structural members."""
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k not in STRUCTURAL}


def triggers_of(body: Any) -> list[Any]:
    triggers = body.get("triggers") if isinstance(body, dict) else None
    return list(triggers) if isinstance(triggers, list) else []


def current_body(draft: Any, versions: list[dict[str, Any]]) -> Any:
    """The body ``settings`` and ``triggers`` summarize: the latest version, else the draft."""
    return versions[-1]["definition"] if versions else draft


def schema_refs(value: Any) -> Iterator[str]:
    """Named schemas ``value`` refers to (``{"$ref": "schema:<ref>"}``), anywhere in it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(SCHEMA_PREFIX):
                yield item[len(SCHEMA_PREFIX) :].split("#", 1)[0]
            else:
                yield from schema_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from schema_refs(item)


def references(body: Any) -> Iterator[tuple[str, str, str]]:
    """``(kind, name, JSON pointer)`` of every action (``action``), child definition
    (``definition``) and event type (``event``) a definition body names, in document
    order; read from the node models' declarations, so a new node type needs no change
    here."""
    if not isinstance(body, dict):
        return
    for path, model, raw, _ in _raw_steps(body.get("steps"), "/steps", frozenset()):
        for name, kind in model.fields.items():
            if kind == "action" and isinstance(raw.get(name), str):
                yield "action", raw[name], f"{path}/{name}"
        for name, what in model.references.items():
            value = raw.get(name)
            if isinstance(value, str):
                yield what, value, f"{path}/{name}"
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, str):
                        yield what, item, f"{path}/{name}/{index}"
    for index, trigger in enumerate(triggers_of(body)):
        if isinstance(trigger, dict) and isinstance(trigger.get("event"), str):
            yield "event", trigger["event"], f"/triggers/{index}/event"


@dataclass
class Uses:
    """What definition bodies use (each by name), collected by :func:`uses`."""

    actions: set[str] = field(default_factory=set)
    node_types: set[str] = field(default_factory=set)
    event_types: set[str] = field(default_factory=set)
    schemas: set[str] = field(default_factory=set)
    definitions: set[str] = field(default_factory=set)

    def add(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        for _, _, raw, _ in _raw_steps(body.get("steps"), "/steps", frozenset()):
            self.node_types.add(raw["type"])
        sets = {"action": self.actions, "definition": self.definitions, "event": self.event_types}
        for kind, name, _ in references(body):
            sets[kind].add(name)
        self.schemas.update(schema_refs(body))


def uses(bodies: Iterable[Any]) -> Uses:
    found = Uses()
    for body in bodies:
        found.add(body)
    return found


def workflow_bodies(workflow: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(pointer suffix, body)`` of a bundle workflow's draft and versions."""
    yield "/draft", workflow.get("draft")
    for index, version in enumerate(workflow.get("versions") or []):
        if isinstance(version, dict):
            yield f"/versions/{index}/definition", version.get("definition")


class FormatVersionError(ValueError):
    """The bundle is of a format this code does not read (``needed``: its version)."""

    def __init__(self, needed: Any) -> None:
        super().__init__(f"format version {needed!r}")
        self.needed = needed


def parse_bundle(document: Any) -> tuple[Bundle | None, list[ErrorItem]]:
    """The bundle, or every schema violation with its JSON pointer.

    Raises:
        FormatVersionError: a ``formatVersion`` other than 1 (checked first: a newer
            format's members would only show up as violations).
    """
    if isinstance(document, dict) and document.get("format") == FORMAT:
        version = document.get("formatVersion")
        if version != FORMAT_VERSION:
            raise FormatVersionError(version)
    try:
        bundle = Bundle.model_validate(document)
    except ValidationError as err:
        return None, [
            ErrorItem(
                path=join(str(p) for p in e["loc"]) if e["loc"] else "",
                code=f"bundle.{e['type']}",
                message=e["msg"],
            )
            for e in err.errors()
        ]
    return bundle, derived_issues(bundle)


def derived_issues(bundle: Bundle) -> list[ErrorItem]:
    """Workflows whose ``settings`` / ``triggers`` disagree with their definitions, and
    keys or event types or schemas listed twice."""
    issues: list[ErrorItem] = []
    for index, workflow in enumerate(bundle.workflows):
        body = current_body(workflow.draft, [v.model_dump() for v in workflow.versions])
        for name, expected in (("settings", settings_of(body)), ("triggers", triggers_of(body))):
            if getattr(workflow, name) != expected:
                issues.append(
                    ErrorItem(
                        path=f"/workflows/{index}/{name}",
                        code="bundle.derived_mismatch",
                        message=f"{name} differs from the latest version's (or the draft's)",
                        hint=f"{name} summarizes the definition: edit the definition instead",
                    )
                )
    for section, attr in (("workflows", "key"), ("eventTypes", "name"), ("schemas", "ref")):
        seen: set[str] = set()
        for index, item in enumerate(getattr(bundle, section)):
            value = getattr(item, attr)
            if value in seen:
                issues.append(
                    ErrorItem(
                        path=f"/{section}/{index}/{attr}",
                        code="bundle.duplicate",
                        message=f"{value!r} is listed twice",
                    )
                )
            seen.add(value)
    return issues


if __name__ == "__main__":  # python -m tempoflow.bundle > schemas/bundle.v1.json
    print(canonical_json(bundle_json_schema()), end="")
