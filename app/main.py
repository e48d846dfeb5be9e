"""The FastAPI application factory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cachetools import TTLCache
from fastapi import FastAPI
from temporalio.client import Client

from activities.plugins import load_registry
from activities.registry import ActionRegistry
from activities.telemetry import sdk_metrics
from activities.tracing import client_interceptors, instrument_app
from app.codec_cors import CodecCors
from app.errors import install_error_handlers
from app.events.dispatcher import Dispatcher
from app.guard import InputGuard
from app.limits import BodySizeLimit
from app.metrics import GaugeSampler
from app.openapi import build_openapi
from app.reconciler import Reconciler
from app.routers import ROUTERS
from app.streams import FeedHub
from projections.db import create_engine, session_factory
from tempoflow.codec import EncryptionCodec
from tempoflow.settings import Settings
from tempoflow.temporal_client import connect_temporal

DESCRIPTION = """Publish JSON workflow definitions and run them durably on Temporal.

Every endpoint except `/healthz`, `/readyz` and `/metrics` needs an API key:
`Authorization: Bearer <key>`. Errors are RFC 9457 problem+json with a stable `code`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    registry: ActionRegistry | None = None,
    temporal: Client | None = None,
) -> FastAPI:
    """Build the app; the engine and the Temporal client are made in the lifespan.

    Without ``registry``, the built-in actions and every plugin are loaded (a plugin that
    fails raises :class:`activities.plugins.PluginError`: the API does not start).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.sqlalchemy_url)
        app.state.sessions = session_factory(engine)
        app.state.temporal = temporal or await connect_temporal(
            settings, runtime=sdk_metrics().runtime, interceptors=client_interceptors(settings)
        )
        sampler = app.state.metrics_sampler = GaugeSampler(app.state.sessions, settings)
        sampler.start()
        app.state.dispatcher = None
        app.state.feed_hub = FeedHub(settings.sqlalchemy_url)
        if settings.dispatcher_enabled:
            app.state.dispatcher = Dispatcher(app.state.sessions, app.state.temporal, settings)
            app.state.dispatcher.start()
        app.state.reconciler = None
        if settings.reconciler_enabled:
            app.state.reconciler = Reconciler(app.state.sessions, app.state.temporal, settings)
            app.state.reconciler.start()
        try:
            yield
        finally:
            if app.state.reconciler is not None:
                await app.state.reconciler.stop()
            if app.state.dispatcher is not None:
                await app.state.dispatcher.stop()
            await sampler.stop()
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
    app.state.registry = registry if registry is not None else load_registry(settings)
    app.state.codec = (
        EncryptionCodec.from_spec(settings.payload_key.get_secret_value())
        if settings.payload_key
        else None
    )
    install_error_handlers(app)
    app.openapi = functools.partial(build_openapi, app)  # type: ignore[method-assign]
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(InputGuard, max_depth=settings.max_json_depth)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        # A bundle carries many definitions: its own limit.
        overrides={
            "/v1/definitions:import": (settings.max_bundle_bytes, "TEMPOFLOW_MAX_BUNDLE_BYTES")
        },
    )
    # Outermost, so the Temporal UI sees CORS headers on every codec answer, errors too.
    app.add_middleware(CodecCors, origins=settings.codec_cors_origins)
    instrument_app(app, settings)
    return app
