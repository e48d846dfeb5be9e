"""Optional OpenTelemetry tracing (``pip install tempoflow[tracing]``).

With ``TEMPOFLOW_TRACING=otlp`` the API and the worker export spans over OTLP (endpoint,
headers and service name from the standard ``OTEL_*`` variables). Temporal's
``TracingInterceptor`` on the client carries the trace context into workflow and
activity headers, so one trace runs from the HTTP request through the workflow to its
activities; the API's requests are traced by the FastAPI instrumentation.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from tempoflow.settings import Settings

MISSING_EXTRA = "TEMPOFLOW_TRACING=otlp needs the tracing extra: pip install 'tempoflow[tracing]'"

_lock = threading.Lock()
_configured = False


def tracing_enabled(settings: Settings) -> bool:
    return settings.tracing != "off"


def configure_provider() -> None:
    """Install a global tracer provider exporting over OTLP, unless one is installed
    already (an application or a test may bring its own)."""
    global _configured
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    with _lock:
        if _configured or isinstance(trace.get_tracer_provider(), TracerProvider):
            _configured = True
            return
        provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_*
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured = True


def client_interceptors(settings: Settings) -> list[Any]:
    """Temporal client (and so worker) interceptors: the tracing one when enabled."""
    if not tracing_enabled(settings):
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError(MISSING_EXTRA) from err
    configure_provider()
    return [TracingInterceptor()]


def instrument_app(app: Any, settings: Settings) -> None:
    """Trace the API's requests (FastAPI instrumentation) when tracing is enabled."""
    if not tracing_enabled(settings):
        return
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError(MISSING_EXTRA) from err

    configure_provider()
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def current_context(settings: Settings) -> dict[str, str] | None:
    """The current trace context as W3C headers (``traceparent``), to store with an
    inbox event so that its delivery continues the request's trace; ``None`` when
    tracing is off or nothing is being traced."""
    if not tracing_enabled(settings):
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def continued(carrier: dict[str, str] | None) -> Iterator[None]:
    """Run the block in the trace context stored with an event (no-op without one)."""
    if not carrier:
        yield
        return
    try:
        from opentelemetry import context, propagate
    except ImportError:  # stored by a process with tracing, read by one without
        yield
        return
    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
