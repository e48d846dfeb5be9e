"""Real servers for the suite: an embedded PostgreSQL and a Temporal dev server.

``TEMPOFLOW_DATABASE_URL`` / ``TEMPOFLOW_TEMPORAL_ADDRESS`` point the suite at existing
servers instead (a fresh database is created and dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from launcher import embedded, migrate
from projections.db import create_engine, session_factory
from tempoflow.settings import to_asyncpg_url
from tests.servers import TemporalDevServer, listener_is_ours

# With WAL pragmas and Tempoflow's search attributes (added by the server command).
# Timers fire within ~20 ms instead of up to a second late (the history service batches
# timer reads by up to ``timerProcessorMaxTimeShift``, 1 s by default): a PT0.2S delay
# took a second, which most of the suite's waiting was.
DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "limit.historyCount.suggestContinueAsNew=100",
    "--dynamic-config-value",
    'history.timerProcessorMaxTimeShift="10ms"',
]


@contextlib.asynccontextmanager
async def dev_server(extra_args: list[str]) -> AsyncIterator[Client]:
    """A client of a Temporal dev server of this process's own (see tests/servers.py)."""
    server = TemporalDevServer(extra_args)
    try:
        await server.start()
        yield await server.connect()
    finally:
        await server.close()


async def start_with_retries(
    start: Callable[[], Awaitable[WorkflowEnvironment]], attempts: int = 3
) -> WorkflowEnvironment:
    """Start an SDK-managed test server, again on a fresh port if it fails or if what
    answers is not ours: the SDK picks a free port and releases it before the server binds
    it, so on a busy machine another suite's server can take it first (the SDK would then
    talk to that one until it stops)."""
    for attempt in range(1, attempts + 1):
        try:
            env = await start()
        except Exception:  # the SDK raises RuntimeError; anything else is worth a retry too
            if attempt == attempts:
                raise
            continue
        port = int(env.client.service_client.config.target_host.rsplit(":", 1)[1])
        if listener_is_ours(port):
            return env
        with contextlib.suppress(Exception):
            await env.shutdown()
    raise RuntimeError(f"no Temporal test server of our own after {attempts} attempts")


async def start_time_skipping_server() -> WorkflowEnvironment:
    return await start_with_retries(
        lambda: WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=str(embedded.TEMPORAL_TEST_SERVER),
            # The SDK waits 5 s by default: too short on a loaded machine.
            test_server_startup_timeout=timedelta(seconds=60),
        )
    )


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
async def temporal_client() -> AsyncIterator[Client]:
    address = os.environ.get("TEMPOFLOW_TEMPORAL_ADDRESS")
    if address:
        yield await Client.connect(address, data_converter=pydantic_data_converter)
        return
    async with dev_server(DEV_SERVER_ARGS) as client:
        yield client


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
