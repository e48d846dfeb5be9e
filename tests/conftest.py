"""Real servers for the suite: an embedded PostgreSQL and a Temporal dev server.

``TEMPOFLOW_DATABASE_URL`` / ``TEMPOFLOW_TEMPORAL_ADDRESS`` point the suite at existing
servers instead (a fresh database is created and dropped).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from launcher import embedded, migrate
from projections.db import create_engine, session_factory
from tempoflow.settings import to_asyncpg_url
from temporal_workflows import search_attributes

DEV_SERVER_ARGS = [
    *embedded.SQLITE_PRAGMAS,
    "--dynamic-config-value",
    "limit.historyCount.suggestContinueAsNew=100",
]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database at head."""
    configured = os.environ.get("TEMPOFLOW_DATABASE_URL")
    name = f"tempoflow_test_{uuid.uuid4().hex[:10]}"
    server = None
    if configured:
        admin_url = configured
    else:
        server = embedded.start_postgres(
            tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
        )
        admin_url = embedded.database_url(server, "postgres")
    asyncio.run(embedded.create_database(admin_url, name))
    url = admin_url.split("?")[0].rsplit("/", 1)[0] + f"/{name}"
    if "?" in admin_url:
        url += "?" + admin_url.split("?", 1)[1]
    migrate.upgrade(url)
    yield url
    asyncio.run(embedded.drop_database(admin_url, name))
    if server is not None:
        server.cleanup()


@pytest.fixture(scope="session")
def admin_database_url(database_url: str) -> str:
    """The maintenance database on the same server (to create throwaway databases)."""
    base, _, query = database_url.partition("?")
    return base.rsplit("/", 1)[0] + "/postgres" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(to_asyncpg_url(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment | None]:
    if os.environ.get("TEMPOFLOW_TEMPORAL_ADDRESS"):
        yield None
        return
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_existing_path=str(embedded.TEMPORAL_CLI),
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment | None) -> Client:
    if temporal_env is not None:
        return temporal_env.client
    return await Client.connect(
        os.environ["TEMPOFLOW_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
