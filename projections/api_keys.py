"""API keys (primary data): stored by hash, bound to a tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, update
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
    expires_at: datetime | None = None,
) -> None:
    session.add(
        ApiKey(
            id=key_id,
            tenant=tenant,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            roles=roles,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def find_live_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The unrevoked, unexpired key with this hash."""
    stmt = select(ApiKey).where(
        ApiKey.key_hash == key_hash,
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_keys(session: AsyncSession, tenant: str) -> list[ApiKey]:
    """The tenant's keys, revoked ones too, newest first."""
    stmt = select(ApiKey).where(ApiKey.tenant == tenant).order_by(ApiKey.created_at.desc())
    return list((await session.execute(stmt)).scalars())


async def get_key(session: AsyncSession, tenant: str, key_id: str) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.tenant == tenant, ApiKey.id == key_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def revoke(session: AsyncSession, tenant: str, key_id: str) -> bool:
    """Revoke the key (once); True when this call revoked it."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.tenant == tenant, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return bool(getattr(result, "rowcount", 0))
