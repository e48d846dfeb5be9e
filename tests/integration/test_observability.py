"""Metrics, health and tracing on the real servers: the API's and the worker's /metrics
after a run that calls an action and waits for an event, the worker's health server,
readiness with a dependency down, and one trace from the HTTP request to the activity."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.telemetry import sdk_metrics
from activities.tracing import client_interceptors
from app.main import create_app
from launcher.worker import create_worker
from launcher.worker_http import WorkerHttp, worker_app
from projections.db import create_engine, session_factory
from projections.models import RunRow
from tempoflow.settings import Settings
from tempoflow.temporal_client import connect_temporal
from tests.actions import Effects, build_registry
from tests.integration.conftest import Stack, make_keys, until

METRIC_NAME = re.compile(r"\b(?:tempoflow|temporal)_[a-z0-9_]+")
OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
"""The Grafana dashboard and the Prometheus alert rules."""


@contextlib.asynccontextmanager
async def metered_stack(
    database_url: str,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """A stack whose client (API and worker) runs on the metered SDK runtime, as
    ``tempoflow api`` and ``tempoflow worker`` do."""
    task_queue = f"tq-{uuid.uuid4()}"
    settings = Settings(
        environment="test", database_url=database_url, task_queue=task_queue, **overrides
    )
    client = await connect_temporal(
        settings.model_copy(
            update={"temporal_address": temporal_client.service_client.config.target_host}
        ),
        runtime=sdk_metrics().runtime,
        interceptors=client_interceptors(settings),
    )
    effects = Effects()
    registry = build_registry(effects)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    keys = await make_keys(sessions, tenant, settings.api_key_pepper)

    def worker_factory() -> Any:
        return create_worker(client, task_queue=task_queue, registry=registry, sessions=sessions)

    app = create_app(settings, registry=registry, temporal=client)
    async with (
        worker_factory(),
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tempoflow"
        ) as http,
    ):
        stack = Stack(http, client, sessions, settings, effects, tenant, keys, worker_factory)
        stack.worker_registry = app  # the app, for its sampler
        yield stack


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by sample name (``x_total``, ``x_bucket``, …); family names map to their
    samples too (a labelled metric not yet used has none)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, [])
        for suffix in SUFFIXES.get(family.type, ()):
            out.setdefault(family.name + suffix, [])
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return sum(v for ls, v in samples.get(name, []) if labels.items() <= ls.items())


PAY = {
    "retention": {"closedRuns": "P7D"},
    "steps": [
        {"id": "charge", "type": "action.call", "action": "test.echo", "input": {"x": "1"}},
        {
            "id": "paid",
            "type": "event.wait",
            "event": "order.paid",
            "correlationKey": "payload.orderId",
        },
    ],
}


async def test_metrics_of_a_run_with_an_action_and_an_event(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with metered_stack(database_url, temporal_client, sessions) as stack:
        r = await stack.http.put(
            "/v1/event-types/order.paid",
            headers=stack.auth("publisher"),
            json={"correlation": {"paths": ["/payload/orderId"]}},
        )
        assert r.status_code in (200, 201), r.text
        await stack.publish("pay", PAY)
        run = await stack.start("pay", {"orderId": "o-1"})

        async def waiting() -> bool:
            return (await stack.run_view(run["id"]))["status"] == "WAITING"

        await until(waiting)
        # One event for the run, one that matches nothing, one duplicate.
        for body in (
            {"name": "order.paid", "id": "e-1", "payload": {"orderId": "o-1"}},
            {"name": "order.paid", "id": "e-2", "payload": {"orderId": "nobody"}},
            {"name": "order.paid", "id": "e-1", "payload": {"orderId": "o-1"}},
        ):
            r = await stack.http.post("/v1/events", headers=stack.auth("ingest"), json=body)
            assert r.status_code in (200, 202), r.text
        await asyncio.wait_for(stack.result(run), 30)
        t = stack.tenant

        async def scraped() -> dict[str, Any] | None:
            r = await stack.http.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            samples = scrape(r.text)
            done = value(samples, "tempoflow_runs_finished_total", tenant=t, status="SUCCEEDED")
            routed = value(samples, "tempoflow_events_routed_total", tenant=t)
            return samples if done == 1 and routed == 2 else None

        samples = await until(scraped)
        assert value(samples, "tempoflow_runs_started_total", tenant=t, definition="pay") == 1
        assert value(samples, "tempoflow_runs_finished_total", tenant=t, definition="pay") == 1
        assert value(samples, "tempoflow_run_duration_seconds_count", tenant=t) == 1
        # Step durations by node type and action (workflow side).
        steps = samples["tempoflow_step_duration_seconds_count"]
        assert any(
            ls["node_type"] == "action.call" and ls["action"] == "test.echo" for ls, _ in steps
        )
        assert any(ls["node_type"] == "event.wait" for ls, _ in steps)
        # The action's attempts (activity side).
        assert value(samples, "tempoflow_action_attempts_total", action="test.echo") >= 1
        assert value(samples, "tempoflow_action_duration_seconds_count", action="test.echo") >= 1
        assert value(samples, "tempoflow_projection_lag_seconds_count") >= 1
        # The event path.
        assert value(samples, "tempoflow_events_ingested_total", tenant=t, result="accepted") == 2
        assert value(samples, "tempoflow_events_ingested_total", tenant=t, result="duplicate") == 1
        assert value(samples, "tempoflow_events_unmatched_total", tenant=t) == 1
        assert value(samples, "tempoflow_event_deliveries_total", kind="wait") >= 1
        # The Temporal SDK's own metrics, merged into the same scrape.
        assert value(samples, "temporal_request_total") > 0
        assert "temporal_workflow_task_schedule_to_start_latency_bucket" in samples

        # Sampled gauges: nothing pending for this tenant, the run is closed.
        app = stack.worker_registry
        await app.state.metrics_sampler.sample()
        samples = scrape((await stack.http.get("/metrics")).text)
        assert value(samples, "tempoflow_inbox_pending", tenant=t) == 0
        assert "tempoflow_dispatcher_lag_seconds" in samples
        assert value(samples, "tempoflow_runs_open", tenant=t) == 0

        # Every metric the dashboard and the alert rules use is exported.
        referenced = set()
        for path in OBSERVABILITY.iterdir():
            referenced |= set(METRIC_NAME.findall(path.read_text()))
        assert referenced, "deploy/ references no metric"
        missing = sorted(name for name in referenced if name not in samples)
        assert not missing, f"deploy/ references metrics /metrics does not export: {missing}"


async def test_open_run_gauges_and_readiness(stack: Stack) -> None:
    from app.metrics import GaugeSampler

    await stack.publish(
        "hold", {"steps": [{"id": "g", "type": "action.call", "action": "test.gate"}]}
    )
    run = await stack.start("hold")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)
    sampler = GaugeSampler(stack.sessions, stack.settings)
    await sampler.sample()
    samples = scrape((await stack.http.get("/metrics")).text)
    assert value(samples, "tempoflow_runs_open", tenant=stack.tenant, status="RUNNING") == 1
    assert value(samples, "tempoflow_runs_stale", tenant=stack.tenant) == 0
    # No run record for two hours and no step finished since: stale.
    async with stack.sessions.begin() as session:
        await session.execute(
            update(RunRow)
            .where(RunRow.run_id == run["id"])
            .values(updated_at=func.now() - timedelta(hours=2))
        )
    await sampler.sample()
    samples = scrape((await stack.http.get("/metrics")).text)
    assert value(samples, "tempoflow_runs_stale", tenant=stack.tenant, status="RUNNING") == 1
    r = await stack.http.get("/readyz")
    assert r.status_code == 200, r.text
    assert set(r.json()["checks"]) == {"database", "temporal", "dispatcher"}
    stack.effects.release[run["id"]].set()
    await asyncio.wait_for(stack.result(run), 30)
    await sampler.sample()
    samples = scrape((await stack.http.get("/metrics")).text)
    assert value(samples, "tempoflow_runs_open", tenant=stack.tenant, status="RUNNING") == 0


async def test_worker_health_server(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = Settings(environment="test", database_url=database_url, readiness_timeout_seconds=1)
    http = WorkerHttp(worker_app(temporal_client, sessions, settings), "127.0.0.1", 0)
    await http.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as c:
            assert (await c.get("/healthz")).json() == {"status": "ok"}
            r = await c.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["checks"] == {"database": "ok", "temporal": "ok"}
            r = await c.get("/metrics")
            assert r.status_code == 200 and "tempoflow_action_attempts" in r.text
    finally:
        await http.stop()


async def test_readiness_fails_fast_when_the_database_is_unreachable(
    database_url: str, temporal_client: Client
) -> None:
    # A loopback port nothing listens on (bound, then closed).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://nobody:x@127.0.0.1:{port}/none"
    settings = Settings(environment="test", database_url=url, readiness_timeout_seconds=1)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        http = WorkerHttp(
            worker_app(temporal_client, session_factory(engine), settings), "127.0.0.1", 0
        )
        await http.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as c:
                started = asyncio.get_running_loop().time()
                r = await c.get("/readyz")
                took = asyncio.get_running_loop().time() - started
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["temporal"] == "ok" and checks["database"].startswith("error")
            assert took < 3
        finally:
            await http.stop()
        api = create_app(settings, temporal=temporal_client)
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as c,
        ):
            r = await c.get("/readyz")
            assert r.status_code == 503
            body = r.json()
            assert body["code"] == "unavailable" and body["checks"]["temporal"] == "ok"
            assert body["checks"]["database"].startswith("error")
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await engine.dispose()
