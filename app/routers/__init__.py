"""One router per resource, collected in :data:`ROUTERS`."""

from __future__ import annotations

from app.routers import (
    actions,
    api_keys,
    audit,
    codec,
    definitions,
    egress,
    event_types,
    events,
    expressions,
    health,
    hooks,
    notifications,
    runs,
    secrets,
    streams,
    tasks,
)

ROUTERS = [
    health.router,
    definitions.router,
    runs.bulk_router,
    runs.router,
    actions.router,
    expressions.router,
    event_types.router,
    events.router,
    tasks.router,
    api_keys.router,
    audit.router,
    codec.router,
    egress.router,
    secrets.router,
    streams.router,
    hooks.router,
    notifications.router,
]
