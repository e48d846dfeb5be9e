"""Identifiers shared by the API and the workflow."""

from __future__ import annotations


def workflow_id(tenant: str, run_id: str) -> str:
    """A run's Temporal workflow id: namespaced by tenant (``<tenant>/<run id>``)."""
    return f"{tenant}/{run_id}"


def parse_workflow_id(wid: str) -> tuple[str, str] | None:
    """``(tenant, run id)`` of a run's workflow id; None for ids of other workflows."""
    tenant, sep, run_id = wid.rpartition("/")
    return (tenant, run_id) if sep and tenant and run_id else None
