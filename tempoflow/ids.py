"""Identifiers shared by the API and the workflow."""

from __future__ import annotations


def workflow_id(tenant: str, run_id: str) -> str:
    """A run's Temporal workflow id: namespaced by tenant (``<tenant>/<run id>``)."""
    return f"{tenant}/{run_id}"
