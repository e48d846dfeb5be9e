"""Typed settings, read from ``TEMPOFLOW_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from expression.engine import compile_expression
from expression.errors import ExpressionError
from expression.limits import ExpressionLimits
from tempoflow.codec import parse_payload_keys
from tempoflow.keyring import DEV_SECRETS_KEY, Keyring, parse_keys
from tempoflow.limits import MAX_BUNDLE_BYTES, RunLimits

DEV_PEPPER = "tempoflow-development-pepper"


class SmtpSettings(BaseModel):
    """The SMTP server ``email.send`` uses unless a step's input names one
    (``TEMPOFLOW_SMTP__HOST``, ``TEMPOFLOW_SMTP__PORT``, …)."""

    host: str | None = None
    """No host: ``email.send`` needs an ``smtp`` object in its input."""
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "starttls"
    """``starttls`` upgrades a plain connection (port 587), ``tls`` connects with TLS
    (port 465), ``none`` sends in clear (local relays and sinks only)."""
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Connect and per-command timeout; a timeout is retried under the step's policy."""
    from_address: str | None = None
    """Sender used when a step's input has no ``from``."""


class RetentionSettings(BaseModel):
    """Pruning of closed runs (their steps, invocations, waits, tasks, deliveries) and of
    settled inbox events; a definition's ``retention.closedRuns`` overrides the tenant's."""

    closed_runs: timedelta = timedelta(days=30)
    """Default for every tenant: how long after closing a run's rows are kept."""
    tenants: dict[str, timedelta] = Field(default_factory=dict)
    """Per-tenant defaults (``{"acme": "P7D"}``), winning over ``closed_runs``."""
    prune_interval_seconds: float = Field(default=300.0, gt=0)
    """How often the worker prunes."""
    prune_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Runs (or events) deleted per transaction."""

    def for_tenant(self, tenant: str) -> timedelta:
        return self.tenants.get(tenant, self.closed_runs)


class Settings(BaseSettings):
    """Every knob of the API, the worker and the dev stack.

    ``database_url`` and ``temporal_address`` win over the embedded servers: when they are
    unset, ``tempoflow dev`` starts embedded PostgreSQL and a Temporal dev server under
    ``home``.
    """

    # Errors never echo a value: settings hold secrets (pepper, payload keys, passwords).
    model_config = SettingsConfigDict(
        env_prefix="TEMPOFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        # Errors never echo settings: they may hold keys and passwords.
        hide_input_in_errors=True,
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

    secrets_key: SecretStr = SecretStr(DEV_SECRETS_KEY)
    """Keys encrypting the secret store (comma-separated; the first encrypts, all decrypt).
    Must be set outside development; see docs/secrets.md for rotation."""

    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest accepted request body (413 above it)."""
    max_json_depth: int = Field(default=64, ge=8, le=200)
    """Deepest nesting of objects and arrays in a request body (422 beyond it); well below
    the ~255 levels pydantic and Temporal's data converter can serialize."""
    max_bundle_bytes: int = Field(default=MAX_BUNDLE_BYTES, ge=1024)
    """Largest bundle ``POST /v1/definitions:import`` accepts (413 above it; the only
    request allowed over ``max_request_bytes``)."""
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
    default_correlation: str | None = None
    """Tenant-wide default correlation: a JSONata expression over the event (``id``,
    ``name``, ``payload``, ``occurredAt``) giving the key of events whose type has no
    correlation of its own, e.g. ``payload.orderId``. Unset: such events are uncorrelated
    unless they carry a key."""
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

    max_bulk_runs: int = Field(default=1000, ge=1, le=100_000)
    """Most runs one ``POST /v1/runs:cancel`` or ``:terminate`` acts on (422 above it)."""
    reconciler_enabled: bool = True
    """Correct open run projections of runs Temporal has closed (terminated, timed out)
    from this API process (any number of processes may)."""
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    """How often the reconciler asks Temporal for runs it closed; with Temporal's
    visibility lag, the delay before a run terminated outside Tempoflow shows so."""
    reconcile_stale_seconds: float = Field(default=300.0, gt=0)
    """An open run projection not written for this long is checked against Temporal."""
    reconcile_lookback_seconds: float = Field(default=3600.0, ge=0)
    """How far back a starting API process looks for runs Temporal closed."""
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    """The worker's SMTP server for ``email.send`` (``tempoflow dev`` points it at its
    local sink)."""

    payload_key: SecretStr | None = None
    """Encrypt every Temporal payload (AES-GCM): ``kid:base64key[,kid2:base64key…]``, the
    first encrypts and all decrypt (docs/encryption.md). API and worker need the same."""
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Browser origins (the Temporal UI's) allowed to call ``/codec/*``, comma-separated.
    In development, requests from these origins need no API key (the dev UI has no login)."""

    @field_validator("payload_key")
    @classmethod
    def _check_payload_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            parse_payload_keys(value.get_secret_value())  # raises on a malformed list
            return value
        return None

    @field_validator("default_correlation")
    @classmethod
    def _check_default_correlation(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        try:
            compile_expression(value)
        except ExpressionError as err:
            raise ValueError(f"not a valid JSONata expression: {err.message}") from None
        return value

    @field_validator("codec_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    action_modules: str = ""
    """Comma-separated modules whose ``register(registry)`` adds actions (``module`` or
    ``module:callable``), besides the ``tempoflow.actions`` entry points; the API and the
    worker must be given the same list (docs/actions.md)."""
    worker_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    """How often a worker records its loaded actions (``GET /v1/actions`` shows them)."""
    worker_presence_seconds: float = Field(default=60.0, gt=0)
    """A worker seen within this many seconds counts as running (``workers.available``)."""
    worker_max_concurrent_activities: int = Field(default=100, ge=1, le=10_000)
    """Activities (action attempts, projection writes) one worker runs at once."""
    worker_max_concurrent_local_activities: int = Field(default=100, ge=1, le=10_000)
    """Local activities (projection writes of a run, flow control requests) at once."""
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=2, le=10_000)
    """Workflow tasks (interpreter steps) one worker processes at once."""
    worker_workflow_task_pollers: int = Field(default=5, ge=2, le=100)
    """Long polls a worker keeps open for workflow tasks (at least 2: sticky + normal)."""
    worker_activity_task_pollers: int = Field(default=5, ge=1, le=100)
    """Long polls a worker keeps open for activity tasks."""
    http_max_response_bytes: int = Field(default=1_048_576, ge=1024, le=1_400_000)
    """Largest response body ``http.request`` and ``webhook.send`` read (decoded); reading
    stops there and the step fails ``HttpResponseTooLarge``. Below Temporal's 2 MB payload
    limit even when the body is returned base64-encoded."""
    http_max_redirects: int = Field(default=5, ge=0, le=20)
    """Most redirects one request follows (a request may ask for fewer); each hop is
    checked by the egress policy again."""
    http_default_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Timeout of one HTTP attempt (connect, send, read) when the step gives none."""
    http_max_retry_after_seconds: float = Field(default=300.0, ge=0)
    """Longest ``Retry-After`` honoured before the next attempt (the step's ``maxInterval``
    caps it too)."""
    http_max_connections: int = Field(default=100, ge=1, le=10_000)
    """Connections one worker keeps open at most for HTTP actions (per allow-list)."""
    egress_rules_cache_seconds: float = Field(default=10.0, ge=0)
    """How long a worker keeps a tenant's egress allow-list; a change through
    ``PUT /v1/egress-rules`` applies to requests after at most this long (0: every
    request reads it)."""
    metrics_sample_seconds: float = Field(default=15.0, gt=0)
    """How often an API process samples the inbox gauges (depth, dispatcher lag)."""
    stale_run_seconds: float = Field(default=3600.0, gt=0)
    """A ``RUNNING`` run with no run record and no finished step written for this long
    counts as stale (``tempoflow_runs_stale``; one long step also looks like this)."""
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    """The worker's HTTP port for ``/metrics``, ``/healthz`` and ``/readyz``; 0 turns it
    off."""
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    """Budget of each ``/readyz`` check (database, Temporal, dispatcher lag)."""
    readiness_max_dispatch_lag_seconds: float = Field(default=300.0, ge=0)
    """``/readyz`` answers 503 when the oldest due inbox event waits longer; 0 ignores
    the lag."""
    tracing: Literal["off", "otlp"] = "off"
    """``otlp`` exports OpenTelemetry traces (needs the ``tracing`` extra; the exporter
    reads the standard ``OTEL_*`` variables)."""
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    """How long closed runs' rows and settled events are kept, e.g.
    ``TEMPOFLOW_RETENTION__CLOSED_RUNS=P30D``."""
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
        keys = parse_keys(self.secrets_key.get_secret_value())  # ValueError: malformed
        if self.environment == "production":
            missing = []
            if self.api_key_pepper == DEV_PEPPER:
                missing.append("TEMPOFLOW_API_KEY_PEPPER")
            if any(k in parse_keys(DEV_SECRETS_KEY) for k in keys):
                missing.append("TEMPOFLOW_SECRETS_KEY (without the development key)")
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
    def keyring(self) -> Keyring:
        """The secret store's keys."""
        return Keyring.from_text(self.secrets_key.get_secret_value())

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
