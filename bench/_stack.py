"""Servers for benchmarks: configured URLs when set, else embedded ones in a temp dir."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from launcher import embedded, migrate
from projections.db import create_engine
from tempoflow.settings import to_asyncpg_url
from temporal_workflows import search_attributes


@dataclass
class BenchStack:
    client: Client
    engine: AsyncEngine
    database_url: str
    pgdata: Path | None = None
    """The embedded PostgreSQL's data directory (``None``: a configured server)."""


@asynccontextmanager
async def bench_stack() -> AsyncIterator[BenchStack]:
    """Temporal (dev server, SQLite WAL) and a fresh migrated PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix="tfbench") as tmp:
        configured_db = os.environ.get("TEMPOFLOW_DATABASE_URL")
        server = None
        if configured_db:
            admin = configured_db
        else:
            server = embedded.start_postgres(Path(tmp) / "pg", cleanup_mode="delete")
            admin = embedded.database_url(server, "postgres")
        name = f"tempoflow_bench_{uuid.uuid4().hex[:8]}"
        await embedded.create_database(admin, name)
        base, _, query = admin.partition("?")
        url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
        await asyncio.to_thread(migrate.upgrade, url)
        env = None
        address = os.environ.get("TEMPOFLOW_TEMPORAL_ADDRESS")
        if address:
            client = await Client.connect(address, data_converter=pydantic_data_converter)
        else:
            env = await WorkflowEnvironment.start_local(
                data_converter=pydantic_data_converter,
                search_attributes=search_attributes.ALL,
                dev_server_existing_path=str(embedded.TEMPORAL_CLI),
                dev_server_extra_args=embedded.SQLITE_PRAGMAS,
            )
            client = env.client
        engine = create_engine(to_asyncpg_url(url), pool_size=20, pre_ping=False)
        try:
            yield BenchStack(client, engine, url, Path(server.pgdata) if server else None)
        finally:
            await engine.dispose()
            if env is not None:
                await env.shutdown()
            await embedded.drop_database(admin, name)
            if server is not None:
                server.cleanup()
