"""Webhook hooks (``POST /v1/hooks/{hookId}``): kept in step with the latest published
version's webhook triggers; a hook's id survives republishing while its trigger's name
stays."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import DefinitionRow, DisabledTrigger, HookRow
from tempoflow.hooks import new_hook_id


async def sync_hooks(
    session: AsyncSession, tenant: str, key: str, version: int, body: dict[str, Any]
) -> dict[str, str]:
    """Create, update or delete the definition's hooks for ``body``'s webhook triggers;
    returns the hook id of each trigger name."""
    wanted = {
        t["name"]: t["webhook"]
        for t in body.get("triggers") or []
        if isinstance(t, dict) and t.get("webhook") is not None
    }
    stmt = select(HookRow).where(HookRow.tenant == tenant, HookRow.definition_key == key)
    existing = {h.trigger_name: h for h in (await session.execute(stmt)).scalars()}
    gone = [h.hook_id for name, h in existing.items() if name not in wanted]
    if gone:
        await session.execute(delete(HookRow).where(HookRow.hook_id.in_(gone)))
    ids: dict[str, str] = {}
    for name, config in wanted.items():
        hook = existing.get(name)
        if hook is None:
            hook = HookRow(
                hook_id=new_hook_id(),
                tenant=tenant,
                definition_key=key,
                trigger_name=name,
                config=config,
                version=version,
            )
            session.add(hook)
        else:
            hook.config = config
            hook.version = version
        ids[name] = hook.hook_id
    await session.flush()
    return ids


async def get_hook(session: AsyncSession, hook_id: str) -> tuple[HookRow, bool, bool] | None:
    """The hook, whether its definition is paused and whether its trigger is disabled;
    ``None`` for an unknown id (or a deleted definition's)."""
    stmt = (
        select(HookRow, DefinitionRow.paused, DisabledTrigger.trigger_name)
        .join(
            DefinitionRow,
            (DefinitionRow.tenant == HookRow.tenant)
            & (DefinitionRow.key == HookRow.definition_key),
        )
        .outerjoin(
            DisabledTrigger,
            (DisabledTrigger.tenant == HookRow.tenant)
            & (DisabledTrigger.definition_key == HookRow.definition_key)
            & (DisabledTrigger.trigger_name == HookRow.trigger_name),
        )
        .where(HookRow.hook_id == hook_id, DefinitionRow.deleted_at.is_(None))
    )
    found = (await session.execute(stmt)).first()
    return None if found is None else (found[0], bool(found[1]), found[2] is not None)


async def remove_hooks(session: AsyncSession, tenant: str, key: str) -> None:
    """Delete the definition's hooks (their URLs answer 404 from now on)."""
    await session.execute(
        delete(HookRow).where(HookRow.tenant == tenant, HookRow.definition_key == key)
    )


async def list_hooks(session: AsyncSession, tenant: str, key: str) -> list[HookRow]:
    stmt = (
        select(HookRow)
        .where(HookRow.tenant == tenant, HookRow.definition_key == key)
        .order_by(HookRow.trigger_name)
    )
    return list((await session.execute(stmt)).scalars())
