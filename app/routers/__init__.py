"""One router per resource, collected in :data:`ROUTERS`."""

from __future__ import annotations

from app.routers import actions, definitions, expressions, health, runs

ROUTERS = [health.router, definitions.router, runs.router, actions.router, expressions.router]
