"""OpenTelemetry tracing (the ``tracing`` extra): one trace from the HTTP request that
starts a run through the workflow to its action's activity."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tests.integration.conftest import until
from tests.integration.test_observability import metered_stack

ECHO = {"steps": [{"id": "a", "type": "action.call", "action": "test.echo", "input": {}}]}


def provider_with(exporter: InMemorySpanExporter) -> None:
    """The process's tracer provider (settable once) with ``exporter`` attached."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(exporter))


async def test_one_trace_from_http_request_to_activity(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    exporter = InMemorySpanExporter()
    provider_with(exporter)
    async with metered_stack(database_url, temporal_client, sessions, tracing="otlp") as stack:
        await stack.publish("traced", ECHO)
        exporter.clear()
        run = await stack.start("traced")
        await asyncio.wait_for(stack.result(run), 30)

        def names() -> dict[str, list[int]]:
            out: dict[str, list[int]] = {}
            for span in exporter.get_finished_spans():
                assert span.context is not None
                out.setdefault(span.name, []).append(span.context.trace_id)
            return out

        async def complete() -> dict[str, list[int]] | None:
            spans = names()
            return spans if "RunActivity:test.echo" in spans else None

        spans = await until(complete)
    http = [trace_id for name, ids in spans.items() if name.startswith("POST") for trace_id in ids]
    assert http, sorted(spans)
    trace_id = http[0]
    for expected in (
        "StartWorkflow:tempoflow.run",
        "RunWorkflow:tempoflow.run",
        "RunActivity:test.echo",
    ):
        matching = [n for n in spans if n == expected]
        assert matching, (expected, sorted(spans))
        assert trace_id in spans[matching[0]], (expected, sorted(spans))


async def test_one_trace_from_http_event_to_signal_and_triggered_steps(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    exporter = InMemorySpanExporter()
    provider_with(exporter)
    async with metered_stack(database_url, temporal_client, sessions, tracing="otlp") as stack:
        r = await stack.http.put(
            "/v1/event-types/order.paid",
            headers=stack.auth("publisher"),
            json={"correlation": {"paths": ["/payload/orderId"]}},
        )
        assert r.status_code in (200, 201), r.text
        wait = {
            "steps": [
                {
                    "id": "w",
                    "type": "event.wait",
                    "event": "order.paid",
                    "correlationKey": "payload.orderId",
                },
                {"id": "a", "type": "action.call", "action": "test.echo", "input": {}},
            ]
        }
        await stack.publish("waits", wait)
        await stack.publish("triggered", {**ECHO, "triggers": [{"event": "order.paid"}]})
        run = await stack.start("waits", {"orderId": "o-1"})

        async def waiting() -> bool:
            return (await stack.run_view(run["id"]))["status"] == "WAITING"

        await until(waiting)
        exporter.clear()
        r = await stack.http.post(
            "/v1/events",
            headers=stack.auth("ingest"),
            json={"name": "order.paid", "payload": {"orderId": "o-1"}},
        )
        assert r.status_code == 202, r.text
        await asyncio.wait_for(stack.result(run), 30)

        def by_trace() -> dict[int, set[str]]:
            out: dict[int, set[str]] = {}
            for span in exporter.get_finished_spans():
                assert span.context is not None
                out.setdefault(span.context.trace_id, set()).add(span.name)
            return out

        async def event_trace() -> tuple[int, set[str]] | None:
            for trace_id, names in by_trace().items():
                if "POST /v1/events" in names and "RunActivity:test.echo" in names:
                    return trace_id, names
            return None

        trace_id, names = await until(event_trace)
        handled = [
            span
            for span in exporter.get_finished_spans()
            if span.name == "HandleSignal:tempoflow.event"
        ]
    # The request, the signal to the waiting run, and the run the event triggered, step
    # by step, all in the request's trace.
    for expected in (
        "SignalWorkflow:tempoflow.event",
        "StartWorkflow:tempoflow.run",
        "RunWorkflow:tempoflow.run",
        "RunActivity:test.echo",
    ):
        assert expected in names, (expected, "; ".join(sorted(names)))
    # The waiting run handles the signal in its own trace (Temporal's model: a workflow
    # is one trace), linked to the request's.
    assert handled
    assert any(link.context.trace_id == trace_id for span in handled for link in span.links)
