"""One router per resource, collected in :data:`ROUTERS`."""

from __future__ import annotations

from app.routers import (
    actions,
    definitions,
    event_types,
    events,
    expressions,
    health,
    runs,
    streams,
    tasks,
)

ROUTERS = [
    health.router,
    definitions.router,
    runs.router,
    actions.router,
    expressions.router,
    event_types.router,
    events.router,
    tasks.router,
    streams.router,
]
