"""API keys: random secrets shown once, stored as HMAC-SHA256 hashes, bound to a tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from projections import api_keys

ROLES = frozenset({"admin", "publisher", "operator", "ingest"})
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
KEY_PREFIX = "tf_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    tenant: str
    key_id: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str]) -> bool:
        return "admin" in self.roles or bool(self.roles & roles)


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


async def create_api_key(
    session: AsyncSession,
    *,
    tenant: str,
    roles: list[str],
    pepper: str,
    name: str = "",
    expires_at: datetime | None = None,
) -> str:
    """Store a new key and return its plaintext (the only time it is visible)."""
    return (
        await create_api_key_row(
            session, tenant=tenant, roles=roles, pepper=pepper, name=name, expires_at=expires_at
        )
    )[1]


async def create_api_key_row(
    session: AsyncSession,
    *,
    tenant: str,
    roles: list[str],
    pepper: str,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, str]:
    """Store a new key; ``(id, plaintext)`` (the only time the plaintext is visible)."""
    if not re.match(TENANT_PATTERN, tenant):
        raise ValueError(f"tenant must match {TENANT_PATTERN}")
    unknown = set(roles) - ROLES
    if unknown or not roles:
        raise ValueError(f"roles must be among {sorted(ROLES)}; got {sorted(roles)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = str(uuid.uuid4())
    await api_keys.add_api_key(
        session,
        key_id=key_id,
        tenant=tenant,
        name=name or f"{tenant} key",
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(secret, pepper),
        roles=sorted(set(roles)),
        expires_at=expires_at,
    )
    return key_id, secret


async def authenticate(session: AsyncSession, key: str, pepper: str) -> Principal | None:
    row = await api_keys.find_live_key(session, hash_key(key, pepper))
    if row is None:
        return None
    return Principal(tenant=row.tenant, key_id=row.id, roles=frozenset(row.roles))
