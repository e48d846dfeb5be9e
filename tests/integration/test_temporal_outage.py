"""Temporal stops while events arrive: they are accepted (202, durable in the inbox) and
delivered once it is back. Runs its own Temporal dev server with a database file so the
waiting runs survive the restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from app.main import create_app
from projections.models import Event
from tempoflow.settings import Settings
from tests.integration.conftest import own_server_app, until
from tests.integration.test_events import PAID, wait_for_paid
from tests.servers import TemporalDevServer, closed_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    srv = TemporalDevServer(db_file=tmp_path / "temporal.db")
    yield srv
    await srv.close()


@pytest.mark.timeout(240)  # two server starts, a dispatcher backoff and 5 runs, when loaded
async def test_events_accepted_while_temporal_is_down_are_delivered_after(
    server: TemporalDevServer, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await server.start()
    client = await server.connect()
    own = await own_server_app(
        client,
        server.address,
        database_url,
        sessions,
        dispatch_max_backoff_seconds=1.0,
        dispatch_poll_seconds=0.2,
    )
    tenant, auth, app, worker = own.tenant, own.auth, own.app, own.worker
    async with (
        worker,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        r = await http.put(
            f"/v1/event-types/{PAID}",
            headers=auth,
            json={"correlation": {"paths": ["/payload/orderId"]}},
        )
        assert r.status_code == 201
        for req in (
            http.put(
                "/v1/definitions/pay",
                headers=auth,
                json={"name": "pay", "definition": wait_for_paid()},
            ),
            http.post("/v1/definitions/pay/publish", headers=auth),
        ):
            assert (await req).status_code in (200, 201)
        runs: list[dict[str, Any]] = []
        for i in range(5):
            r = await http.post(
                "/v1/runs",
                headers=auth,
                json={"definition": "pay", "input": {"orderId": f"down-{i}"}},
            )
            assert r.status_code == 201, r.text
            runs.append(r.json())

        async def all_waiting() -> bool:
            views = [await http.get(f"/v1/runs/{run['id']}", headers=auth) for run in runs]
            return all(v.json()["status"] == "WAITING" for v in views)

        await until(all_waiting)
        await server.stop()
        for i in range(5):
            r = await http.post(
                "/v1/events",
                headers=auth,
                json={
                    "name": PAID,
                    "id": f"down-{i}",
                    "payload": {"orderId": f"down-{i}", "amount": i},
                },
            )
            assert r.status_code == 202, r.text

        async def failed_once() -> bool:
            async with sessions() as session:
                rows = (
                    await session.execute(select(Event).where(Event.tenant == tenant))
                ).scalars()
                return all(e.status == "PENDING" and e.last_error for e in rows)

        await until(failed_once, within=60)
        await server.start()
        for i, run in enumerate(runs):
            result = await asyncio.wait_for(
                client.get_workflow_handle(run["workflowId"]).result(), 90
            )
            assert result["output"]["paid"]["id"] == f"down-{i}"

        async def routed() -> bool:
            async with sessions() as session:
                rows = list(
                    (await session.execute(select(Event).where(Event.tenant == tenant))).scalars()
                )
                return all(e.status == "ROUTED" and e.attempts >= 2 for e in rows)

        await until(routed, within=30)


async def test_database_down_is_503_and_nothing_is_accepted(
    database_url: str, temporal_client: Client
) -> None:
    with closed_port() as port:
        settings = Settings(
            environment="test",
            database_url=f"postgresql://nobody@127.0.0.1:{port}/none",
            dispatcher_enabled=False,
        )
        app = create_app(settings, temporal=temporal_client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            r = await http.post(
                "/v1/events",
                headers={"Authorization": "Bearer tf_x"},
                json={"name": PAID, "payload": {}},
            )
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
