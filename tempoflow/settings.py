"""Typed settings, read from ``TEMPOFLOW_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from expression.limits import ExpressionLimits
from tempoflow.limits import RunLimits

DEV_PEPPER = "tempoflow-development-pepper"


class Settings(BaseSettings):
    """Every knob of the API, the worker and the dev stack.

    ``database_url`` and ``temporal_address`` win over the embedded servers: when they are
    unset, ``tempoflow dev`` starts embedded PostgreSQL and a Temporal dev server under
    ``home``.
    """

    model_config = SettingsConfigDict(
        env_prefix="TEMPOFLOW_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    home: Path = Path(".tempoflow")

    database_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "tempoflow"

    temporal_ui_url: str | None = None
    """Base URL of the Temporal Web UI; run responses link to it when set."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233

    # HMAC key for API key hashes; must be set outside development.
    api_key_pepper: str = DEV_PEPPER

    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest accepted request body (413 above it)."""
    max_json_depth: int = Field(default=64, ge=8, le=200)
    """Deepest nesting of objects and arrays in a request body (422 beyond it); well below
    the ~255 levels pydantic and Temporal's data converter can serialize."""
    max_definition_bytes: int = Field(default=262_144, ge=1024)
    """Largest definition body (JSON-encoded); bounded by Temporal's 2 MB payload limit."""
    max_run_input_bytes: int = Field(default=262_144, ge=1024)
    """Largest run input (JSON-encoded); it is stored in workflow history."""
    expression_limits: ExpressionLimits = Field(default_factory=ExpressionLimits)
    """Budgets of one expression evaluation, e.g. ``TEMPOFLOW_EXPRESSION_LIMITS__MAX_STEPS``;
    each run keeps the limits it started with."""
    run_limits: RunLimits = Field(default_factory=RunLimits)
    """What one run may put into Temporal (payload size, history length), e.g.
    ``TEMPOFLOW_RUN_LIMITS__MAX_PAYLOAD_BYTES``; each run keeps the limits it started with."""
    default_page_size: int = 50
    max_page_size: int = 500

    max_event_bytes: int = Field(default=65_536, ge=256)
    """Largest event payload (JSON-encoded); it travels in a signal into run history."""
    max_batch_events: int = Field(default=100, ge=1, le=1000)
    """Most events in one ``POST /v1/events:batch`` (413 above it)."""
    default_event_buffer_ttl: timedelta = timedelta(hours=1)
    """How long an event waits in the inbox for a matching wait, unless its type says."""
    auth_cache_seconds: float = Field(default=10.0, ge=0)
    """How long an API process trusts a key it has checked (a revoked key keeps working
    this long); 0 checks every request."""
    event_type_cache_seconds: float = Field(default=5.0, ge=0)
    """How long an API process keeps an event type; a change made through another process
    applies to events received after at most this long."""
    dispatcher_enabled: bool = True
    """Route inbox events from this API process (any number of processes may)."""
    dispatch_batch_size: int = Field(default=100, ge=1, le=1000)
    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    """How often pending events are retried without a wake-up from ingress."""
    dispatch_max_backoff_seconds: float = Field(default=30.0, gt=0)
    """Longest wait before retrying an event whose delivery failed (Temporal down)."""
    dispatch_max_attempts: int = Field(default=20, ge=1, le=10_000)
    """Attempts at an event whose routing or delivery fails in an unexpected way (not
    Temporal being unreachable, which is retried as long as it lasts); then the delivery
    (or the event) ends ``FAILED`` with the reason."""

    log_format: Literal["text", "json"] = "text"
    """How the processes (api, worker, dev) write their own log: ``json`` is one JSON
    object per line."""
    run_log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level of the action log lines kept in the run log (``GET /v1/runs/{id}/logs``)."""
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    """How often a live stream sends a comment line when there is nothing else to send."""
    stream_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often a live stream reads the feed without a wake-up (notifications lost while
    the listening connection reconnects)."""

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        if self.environment == "production":
            missing = []
            if self.api_key_pepper == DEV_PEPPER:
                missing.append("TEMPOFLOW_API_KEY_PEPPER")
            if not self.database_url:
                missing.append("TEMPOFLOW_DATABASE_URL")
            if not self.temporal_address:
                missing.append("TEMPOFLOW_TEMPORAL_ADDRESS")
            if missing:
                raise ValueError(
                    "production refuses development defaults; set " + ", ".join(missing)
                )
        return self

    @cached_property
    def resolved_temporal_address(self) -> str:
        """The configured Temporal address, or the embedded dev server's."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's asyncpg form."""
        if not self.database_url:
            raise RuntimeError("TEMPOFLOW_DATABASE_URL is not set (tempoflow dev sets it)")
        return to_asyncpg_url(self.database_url)


class ClientSettings(BaseSettings):
    """What the commands that call a running API read (``publish``, ``run``, ``status``, …).

    The URL is ``TEMPOFLOW_API_URL`` when set, else the one the API of this configuration
    listens on (``TEMPOFLOW_API_HOST``/``TEMPOFLOW_API_PORT``), so a second stack started
    with another port is reached by exporting the same variables.
    """

    model_config = SettingsConfigDict(env_prefix="TEMPOFLOW_", extra="ignore")

    api_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_key: str | None = None

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        # A wildcard bind address is reached through loopback.
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(
            self.api_host, self.api_host
        )
        return (
            f"http://[{host}]:{self.api_port}" if ":" in host else f"http://{host}:{self.api_port}"
        )


def to_asyncpg_url(url: str) -> str:
    """Turn ``postgresql://…`` or ``postgres://…`` into ``postgresql+asyncpg://…``."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://…")
