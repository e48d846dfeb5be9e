"""What the API needs to mask records it reads: the ``redact`` pointers of runs' pinned
definitions (records the workflow wrote are masked already; invocation outputs and inbox
events keep their values, for deduplication and delivery, and are masked when shown)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import DefinitionRow, DefinitionVersionRow, RunRow
from tempoflow.redaction import Redaction


async def run_definition(session: AsyncSession, tenant: str, run_id: str) -> Any:
    """The body of the definition version the run pinned (``None``: not projected)."""
    stmt = (
        select(DefinitionVersionRow.body)
        .join(
            RunRow,
            and_(
                RunRow.tenant == DefinitionVersionRow.tenant,
                RunRow.definition_key == DefinitionVersionRow.key,
                RunRow.definition_version == DefinitionVersionRow.version,
            ),
        )
        .where(RunRow.tenant == tenant, RunRow.run_id == run_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def payload_redactions(
    session: AsyncSession,
    tenant: str,
    run_ids: Collection[str],
    definition_keys: Collection[str] = (),
) -> tuple[dict[str, Redaction], dict[str, Redaction]]:
    """The redactions (only those with pointers) of runs, by run id, and of the latest
    published versions of definitions (for runs a trigger started that are not
    projected yet), by key."""
    by_run: dict[str, Redaction] = {}
    by_key: dict[str, Redaction] = {}
    version = DefinitionVersionRow
    if run_ids:
        stmt = (
            select(RunRow.run_id, version.body["redact"])
            .join(
                RunRow,
                and_(
                    RunRow.tenant == version.tenant,
                    RunRow.definition_key == version.key,
                    RunRow.definition_version == version.version,
                ),
            )
            .where(RunRow.tenant == tenant, RunRow.run_id.in_(run_ids))
        )
        for run_id, pointers in (await session.execute(stmt)).all():
            if pointers:
                by_run[run_id] = Redaction(pointers)
    if definition_keys:
        stmt = (
            select(version.key, version.body["redact"])
            .join(
                DefinitionRow,
                and_(
                    DefinitionRow.tenant == version.tenant,
                    DefinitionRow.key == version.key,
                    DefinitionRow.latest_version == version.version,
                ),
            )
            .where(version.tenant == tenant, version.key.in_(definition_keys))
        )
        for key, pointers in (await session.execute(stmt)).all():
            if pointers:
                by_key[key] = Redaction(pointers)
    return by_run, by_key
