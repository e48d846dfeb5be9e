"""What an import plans to write and what it answers (the summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from activities.registry import ActionRegistry
from projections.models import DefinitionRow
from tempoflow.bundle import BundleWorkflow
from tempoflow.errors import ErrorItem


@dataclass
class Summary:
    """What an import creates, updates and leaves unchanged (by kind)."""

    created: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    updated: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    unchanged: dict[str, list[Any]] = field(default_factory=lambda: _kinds())
    warnings: list[ErrorItem] = field(default_factory=list)

    def to_json(self, *, dry_run: bool, force: bool) -> dict[str, Any]:
        return {
            "dryRun": dry_run,
            "force": force,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "warnings": [w.model_dump(exclude_none=True) for w in self.warnings],
        }


def _kinds() -> dict[str, list[Any]]:
    return {"workflows": [], "versions": [], "eventTypes": [], "schemas": []}


@dataclass
class VersionPlan:
    """A version of the bundle: its number in the tenant and whether the import adds it
    (else an existing version has its content)."""

    bundle_version: int
    number: int
    create: bool


@dataclass
class WorkflowPlan:
    """A workflow to create (``row`` is None) or update (``write_meta``: its draft, name,
    description or pause change)."""

    workflow: BundleWorkflow
    row: DefinitionRow | None
    versions: list[VersionPlan]
    write_meta: bool


@dataclass
class Plan:
    """What an import would write, its summary, its errors (422) and conflicts (409)."""

    workflows: list[WorkflowPlan] = field(default_factory=list)
    event_types: list[dict[str, Any]] = field(default_factory=list)
    """Event types to write (new or replaced), as in the bundle."""
    schemas: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    errors: list[ErrorItem] = field(default_factory=list)
    conflicts: list[ErrorItem] = field(default_factory=list)


@dataclass
class ImportContext:
    """What the checks compare the bundle with: the API's actions, the actions running
    workers have, the mode and the definition size limit."""

    tenant: str
    registry: ActionRegistry
    available_actions: set[str]
    force: bool
    max_definition_bytes: int
    max_schema_bytes: int
