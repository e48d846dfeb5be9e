"""A whole Tempoflow stack per test: worker on a fresh task queue, API over ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.builtin import close_resources
from app.auth import create_api_key
from app.main import create_app
from launcher.worker import create_worker
from tempoflow.settings import Settings
from tests.actions import Effects, build_registry


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is marked ``integration`` (a ``pytestmark`` in a
    conftest marks nothing), so ``-m "not integration"`` runs the unit tests alone."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


HISTORIES = Path(__file__).resolve().parents[1] / "histories"


@dataclass
class Stack:
    http: httpx.AsyncClient
    client: Client
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    effects: Effects
    tenant: str
    keys: dict[str, str]
    worker_factory: Any
    worker_registry: Any = None

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def publish(self, key: str, definition: dict[str, Any], role: str = "admin") -> int:
        r = await self.http.put(
            f"/v1/definitions/{key}",
            headers=self.auth(role),
            json={"name": key, "definition": definition},
        )
        assert r.status_code in (200, 201), r.text
        r = await self.http.post(f"/v1/definitions/{key}/publish", headers=self.auth(role))
        assert r.status_code in (200, 201), r.text
        return int(r.json()["version"])

    async def start(self, key: str, data: Any = None, **extra: Any) -> dict[str, Any]:
        body = {"definition": key, "input": data if data is not None else {}, **extra}
        r = await self.http.post("/v1/runs", headers=self.auth(), json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def result(self, run: dict[str, Any]) -> Any:
        """Wait for the run's workflow to close (Temporal), then return its result."""
        return await self.client.get_workflow_handle(run["workflowId"]).result()

    async def record_history(self, run: dict[str, Any], name: str) -> None:
        """With TEMPOFLOW_RECORD_HISTORIES=1, store the run's history as a golden file
        (tests/histories/NAME.json) that the replay tests check on every CI run."""
        if not os.environ.get("TEMPOFLOW_RECORD_HISTORIES"):
            return
        history = await self.client.get_workflow_handle(run["workflowId"]).fetch_history()
        (HISTORIES / f"{name}.json").write_text(without_stack_traces(history.to_json()))

    async def run_view(self, run_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/runs/{run_id}", headers=self.auth())
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"/v1/runs/{run_id}/steps", headers=self.auth())
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


def without_stack_traces(history_json: str) -> str:
    """A history with failures' stack traces emptied: they name files of this machine and
    replay never reads them."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "" if k == "stackTrace" else strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(json.loads(history_json)))


async def until(check: Any, within: float = 30.0) -> Any:
    """Poll ``check`` (async, returns a truthy value when done) for up to ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def make_keys(
    sessions: async_sessionmaker[AsyncSession], tenant: str, pepper: str
) -> dict[str, str]:
    async with sessions.begin() as session:
        return {
            role: await create_api_key(session, tenant=tenant, roles=[role], pepper=pepper)
            for role in ("admin", "publisher", "operator", "ingest")
        }


@pytest.fixture
async def stack(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Stack]:
    async with open_stack(database_url, temporal_client, sessions) as opened:
        yield opened


@contextlib.asynccontextmanager
async def open_stack(
    database_url: str,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    **settings_extra: Any,
) -> AsyncIterator[Stack]:
    """A stack on a given Temporal client (e.g. a dedicated server with other limits);
    ``settings_extra`` sets further settings of the API (e.g. ``payload_key``)."""
    task_queue = f"tq-{uuid.uuid4()}"
    settings = Settings(
        **{
            "environment": "test",
            "database_url": database_url,
            "task_queue": task_queue,
            "temporal_ui_url": "http://127.0.0.1:8233",
            # Tests change a tenant's allow-list and expect the next run to see it.
            "egress_rules_cache_seconds": 0,
            **settings_extra,
        }
    )
    effects = Effects()
    registry = build_registry(effects, settings=settings, sessions=sessions)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    keys = await make_keys(sessions, tenant, settings.api_key_pepper)

    def worker_factory() -> Worker:
        return create_worker(
            temporal_client, task_queue=task_queue, registry=registry, sessions=sessions
        )

    app = create_app(settings, registry=registry, temporal=temporal_client)
    async with (
        contextlib.AsyncExitStack() as resources,
        worker_factory(),
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tempoflow"
        ) as http,
    ):
        resources.push_async_callback(close_resources, registry)
        yield Stack(
            http,
            temporal_client,
            sessions,
            settings,
            effects,
            tenant,
            keys,
            worker_factory,
            registry,
        )


@dataclass
class OwnServerApp:
    """An API app and a worker on a Temporal server the test starts and stops itself."""

    settings: Settings
    tenant: str
    auth: dict[str, str]
    app: Any
    worker: Worker

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t")


async def own_server_app(
    client: Client,
    address: str,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    **settings_extra: Any,
) -> OwnServerApp:
    """An app (not yet started: enter its lifespan) and a worker (not yet running) on
    ``client``, with admin headers of a fresh tenant."""
    settings = Settings(
        environment="test",
        database_url=database_url,
        temporal_address=address,
        task_queue=f"tq-{uuid.uuid4()}",
        **settings_extra,
    )
    tenant = f"t{uuid.uuid4().hex[:10]}"
    keys = await make_keys(sessions, tenant, settings.api_key_pepper)
    registry = build_registry(Effects())
    return OwnServerApp(
        settings,
        tenant,
        {"Authorization": f"Bearer {keys['admin']}"},
        create_app(settings, registry=registry, temporal=client),
        create_worker(client, task_queue=settings.task_queue, registry=registry, sessions=sessions),
    )


@pytest.fixture
async def other_tenant(stack: Stack) -> dict[str, str]:
    """Admin headers of a second tenant on the same stack."""
    keys = await make_keys(stack.sessions, "other-" + stack.tenant, stack.settings.api_key_pepper)
    return {"Authorization": f"Bearer {keys['admin']}"}
