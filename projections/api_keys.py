"""API keys (primary data): stored by hash, bound to a tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import ApiKey


async def add_api_key(
    session: AsyncSession,
    *,
    key_id: str,
    tenant: str,
    name: str,
    prefix: str,
    key_hash: str,
    roles: list[str],
) -> None:
    session.add(
        ApiKey(id=key_id, tenant=tenant, name=name, prefix=prefix, key_hash=key_hash, roles=roles)
    )
    await session.flush()


async def find_live_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The unrevoked key with this hash."""
    stmt = select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    return (await session.execute(stmt)).scalar_one_or_none()
