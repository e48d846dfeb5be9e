"""The secret store (primary data): encrypted values by tenant and name.

Values are sealed and opened with the caller's :class:`tempoflow.keyring.Keyring`; the
rows hold only ciphertext and the id of the key that made it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import SecretRow
from tempoflow.keyring import Keyring


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


def _info(row: SecretRow) -> SecretInfo:
    return SecretInfo(row.name, row.created_at, row.updated_at)


async def put_secret(
    session: AsyncSession, keyring: Keyring, tenant: str, name: str, value: str
) -> tuple[SecretInfo, bool]:
    """Create or replace the secret; returns it and whether it was created."""
    kid, blob = keyring.encrypt(tenant, name, value)
    insert_stmt = insert(SecretRow).values(tenant=tenant, name=name, key_id=kid, ciphertext=blob)
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=[SecretRow.tenant, SecretRow.name],
        set_={"key_id": kid, "ciphertext": blob, "updated_at": func.now()},
    ).returning(SecretRow, SecretRow.created_at == SecretRow.updated_at)
    row, created = (await session.execute(stmt)).one()
    return _info(row), bool(created)


async def count_others(session: AsyncSession, tenant: str, name: str) -> int:
    """How many secrets the tenant has besides ``name``."""
    stmt = select(func.count()).where(SecretRow.tenant == tenant, SecretRow.name != name)
    return int((await session.execute(stmt)).scalar_one())


async def list_secrets(session: AsyncSession, tenant: str) -> list[SecretInfo]:
    stmt = select(SecretRow).where(SecretRow.tenant == tenant).order_by(SecretRow.name)
    return [_info(r) for r in (await session.execute(stmt)).scalars()]


async def delete_secret(session: AsyncSession, tenant: str, name: str) -> bool:
    """Delete the secret; whether it existed."""
    result = await session.execute(
        delete(SecretRow).where(SecretRow.tenant == tenant, SecretRow.name == name)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def existing_names(session: AsyncSession, tenant: str, names: Collection[str]) -> set[str]:
    """Which of ``names`` the tenant has."""
    if not names:
        return set()
    stmt = select(SecretRow.name).where(SecretRow.tenant == tenant, SecretRow.name.in_(names))
    return set((await session.execute(stmt)).scalars())


async def reveal(
    session: AsyncSession, keyring: Keyring, tenant: str, names: Collection[str]
) -> dict[str, str]:
    """The decrypted values of the tenant's secrets among ``names`` (one query; unknown
    names are absent). Raises :class:`tempoflow.keyring.KeyringError`."""
    if not names:
        return {}
    stmt = select(SecretRow).where(SecretRow.tenant == tenant, SecretRow.name.in_(names))
    return {
        row.name: keyring.decrypt(row.tenant, row.name, row.key_id, row.ciphertext)
        for row in (await session.execute(stmt)).scalars()
    }


async def rotate(session: AsyncSession, keyring: Keyring, *, batch: int = 500) -> int:
    """Re-encrypt up to ``batch`` values that are not under the primary key (all tenants);
    returns how many. Call until it returns 0."""
    stmt = (
        select(SecretRow)
        .where(SecretRow.key_id != keyring.primary_id)
        .order_by(SecretRow.tenant, SecretRow.name)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    rows = list((await session.execute(stmt)).scalars())
    for row in rows:
        value = keyring.decrypt(row.tenant, row.name, row.key_id, row.ciphertext)
        kid, blob = keyring.encrypt(row.tenant, row.name, value)
        await session.execute(
            update(SecretRow)
            .where(SecretRow.tenant == row.tenant, SecretRow.name == row.name)
            .values(key_id=kid, ciphertext=blob)
        )
    return len(rows)


async def key_usage(session: AsyncSession) -> dict[str, int]:
    """How many values each key id encrypts (all tenants)."""
    stmt = select(SecretRow.key_id, func.count()).group_by(SecretRow.key_id)
    return {kid: int(n) for kid, n in (await session.execute(stmt)).all()}
