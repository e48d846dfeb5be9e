"""The FastAPI application factory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cachetools import TTLCache
from fastapi import FastAPI
from temporalio.client import Client

from activities.builtin import default_registry
from activities.registry import ActionRegistry
from app.errors import install_error_handlers
from app.events.dispatcher import Dispatcher
from app.guard import InputGuard
from app.limits import BodySizeLimit
from app.openapi import build_openapi
from app.routers import ROUTERS
from app.streams import FeedHub
from projections.db import create_engine, session_factory
from tempoflow.settings import Settings
from tempoflow.temporal_client import connect_temporal

DESCRIPTION = """Publish JSON workflow definitions and run them durably on Temporal.

Every endpoint except `/healthz` and `/readyz` needs an API key:
`Authorization: Bearer <key>`. Errors are RFC 9457 problem+json with a stable `code`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    registry: ActionRegistry | None = None,
    temporal: Client | None = None,
) -> FastAPI:
    """Build the app; the engine and the Temporal client are made in the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.sqlalchemy_url)
        app.state.sessions = session_factory(engine)
        app.state.temporal = temporal or await connect_temporal(settings)
        app.state.dispatcher = None
        app.state.feed_hub = FeedHub(settings.sqlalchemy_url)
        if settings.dispatcher_enabled:
            app.state.dispatcher = Dispatcher(app.state.sessions, app.state.temporal, settings)
            app.state.dispatcher.start()
        try:
            yield
        finally:
            if app.state.dispatcher is not None:
                await app.state.dispatcher.stop()
            await app.state.feed_hub.close()
            await engine.dispose()

    app = FastAPI(title="Tempoflow", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.principals = TTLCache(
        maxsize=10_000 if settings.auth_cache_seconds else 0, ttl=settings.auth_cache_seconds
    )
    app.state.event_types = TTLCache(
        maxsize=10_000 if settings.event_type_cache_seconds else 0,
        ttl=settings.event_type_cache_seconds,
    )
    app.state.registry = registry or default_registry()
    install_error_handlers(app)
    app.openapi = functools.partial(build_openapi, app)  # type: ignore[method-assign]
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(InputGuard, max_depth=settings.max_json_depth)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)  # outermost
    return app
