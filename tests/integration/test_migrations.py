"""The schema exists only through migrations: one head, reversible with data present."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from launcher import embedded, migrate
from projections.db import Base
from tempoflow.settings import to_asyncpg_url

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_url(admin_database_url: str) -> Iterator[str]:
    name = f"tempoflow_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(embedded.create_database(admin_database_url, name))
    base, _, query = admin_database_url.partition("?")
    yield base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    asyncio.run(embedded.drop_database(admin_database_url, name))


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused/x"))
    assert len(script.get_heads()) == 1


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _sql(url: str, *statements: str) -> list[list[tuple]]:
    engine = create_async_engine(to_asyncpg_url(url))
    out = []
    async with engine.begin() as conn:
        for stmt in statements:
            result = await conn.execute(text(stmt))
            out.append([tuple(r) for r in result] if result.returns_rows else [])
    await engine.dispose()
    return out


async def _diff(url: str) -> list:
    engine = create_async_engine(to_asyncpg_url(url))
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    await engine.dispose()
    return diff


def test_upgrade_downgrade_upgrade_with_data(scratch_url: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(scratch_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    migrate.upgrade(scratch_url)
    assert _run(_diff(scratch_url)) == []  # the models match what the migrations build
    _run(
        _sql(
            scratch_url,
            "insert into api_keys (id, tenant, name, prefix, key_hash, roles) "
            "values ('k1', 'acme', 'k', 'tf_', 'h1', '{admin}')",
            "insert into definitions (tenant, key, name, draft, draft_hash) "
            "values ('acme', 'd', 'D', '{\"steps\": []}', 'x')",
            "insert into definition_versions (tenant, key, version, name, body, content_hash) "
            "values ('acme', 'd', 1, 'D', '{\"steps\": []}', 'x')",
            "insert into runs (run_id, tenant, workflow_id, definition_key, definition_version, "
            "status, seq, started_at) "
            "values ('r1', 'acme', 'acme/r1', 'd', 1, 'RUNNING', 0, now())",
            "insert into steps (run_id, seq, tenant, path, step_id, type, status, started_at) "
            "values ('r1', 1, 'acme', '/steps/0', 'a', 'state.set', 'SUCCEEDED', now())",
        )
    )
    # Step down one revision at a time with the rows in place, then back up.
    for target in [*reversed(revisions[:-1]), "base"]:
        migrate.downgrade(scratch_url, target)
    tables = _run(_sql(scratch_url, "select tablename from pg_tables where schemaname='public'"))
    assert {t[0] for t in tables[0]} <= {"alembic_version"}
    migrate.upgrade(scratch_url)
    assert _run(_diff(scratch_url)) == []
    migrate.downgrade(scratch_url, revisions[-2] if len(revisions) > 1 else "base")
    migrate.upgrade(scratch_url)
