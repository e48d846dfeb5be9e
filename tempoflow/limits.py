"""Limits a run pins at its start (part of the core: settings and the workflow use them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""Default largest bundle ``POST /v1/definitions:import`` accepts (413 above it; setting
``TEMPOFLOW_MAX_BUNDLE_BYTES``). Every definition in it still obeys
``TEMPOFLOW_MAX_DEFINITION_BYTES``; the import is one transaction, so this bounds its size."""


class RunLimits(BaseModel):
    """What one run may put into Temporal (settings ``TEMPOFLOW_RUN_LIMITS__*``).

    A run pins the limits it started with (they travel in its input).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_payload_bytes: int = Field(default=2_000_000, ge=1024)
    """Largest encoded value the run sends Temporal: an action's input, a child run's
    input, the state carried across continue-as-new, the run's output. Temporal refuses
    payloads over 2 MB (its default ``limit.blobSize.error``); above this limit the step
    fails with the catchable ``PayloadTooLarge`` instead."""
    max_history_events: int = Field(default=40_000, ge=100)
    """Events of one execution's history before the run fails with
    ``HistoryLimitExceeded`` (when it cannot continue as new, e.g. a huge ``finally``);
    keep it below the server's ``limit.historyCount.error`` (51,200)."""
    max_history_bytes: int = Field(default=40_000_000, ge=100_000)
    """The same for the history size (the server's ``limit.historySize.error``: 50 MB)."""
