"""Trigger subscriptions: which definitions an event name starts (from the latest
published version's ``triggers``), and the triggers operators turned off by name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import hooks
from projections.models import (
    DefinitionRow,
    DefinitionVersionRow,
    DisabledTrigger,
    TriggerSubscription,
)
from tempoflow.hooks import hook_event_name


async def replace_subscriptions(session: AsyncSession, version: DefinitionVersionRow) -> None:
    """The latest version's triggers replace the definition's subscriptions."""
    await session.execute(
        delete(TriggerSubscription).where(
            TriggerSubscription.tenant == version.tenant,
            TriggerSubscription.definition_key == version.key,
        )
    )
    hook_ids = await hooks.sync_hooks(
        session, version.tenant, version.key, version.version, version.body
    )
    for position, trigger in enumerate(version.body.get("triggers") or []):
        if trigger.get("schedule") is not None:
            continue  # a schedule trigger: a Temporal Schedule (app/schedules.py)
        # A webhook trigger subscribes to its hook's calls (stored in the inbox under a
        # name no event type can have).
        name = (
            hook_event_name(hook_ids[trigger["name"]])
            if trigger.get("webhook") is not None
            else trigger["event"]
        )
        session.add(
            TriggerSubscription(
                tenant=version.tenant,
                definition_key=version.key,
                position=position,
                event_name=name,
                filter=trigger.get("filter"),
                version=version.version,
                trigger_name=trigger.get("name"),
            )
        )
    await session.flush()


@dataclass
class Subscribed:
    """A subscription and why it starts nothing now (``None``: it is on)."""

    subscription: TriggerSubscription
    off: str | None = None


def off_reason(key: str, trigger: str | None, paused: bool, disabled: bool) -> str | None:
    """Why a definition's trigger starts no runs now, or ``None``."""
    if paused:
        return f"definition {key!r} is paused"
    if disabled:
        return f"trigger {trigger!r} of definition {key!r} is disabled"
    return None


async def subscriptions(
    session: AsyncSession, names: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[Subscribed]]:
    """Subscriptions by (tenant, event name), for the given pairs, each with why it is
    off (definition paused, trigger disabled); deleted definitions have none."""
    pairs = sorted(set(names))
    stmt = (
        select(TriggerSubscription, DefinitionRow.paused, DisabledTrigger.trigger_name)
        .join(
            DefinitionRow,
            (DefinitionRow.tenant == TriggerSubscription.tenant)
            & (DefinitionRow.key == TriggerSubscription.definition_key),
        )
        .outerjoin(
            DisabledTrigger,
            (DisabledTrigger.tenant == TriggerSubscription.tenant)
            & (DisabledTrigger.definition_key == TriggerSubscription.definition_key)
            & (DisabledTrigger.trigger_name == TriggerSubscription.trigger_name),
        )
        .where(
            tuple_(TriggerSubscription.tenant, TriggerSubscription.event_name).in_(pairs),
            DefinitionRow.deleted_at.is_(None),
        )
        .order_by(TriggerSubscription.definition_key, TriggerSubscription.position)
    )
    found: dict[tuple[str, str], list[Subscribed]] = {}
    for sub, paused, disabled in (await session.execute(stmt)).all():
        off = off_reason(sub.definition_key, sub.trigger_name, bool(paused), disabled is not None)
        found.setdefault((sub.tenant, sub.event_name), []).append(Subscribed(sub, off))
    return found


async def disabled(session: AsyncSession, tenant: str, key: str) -> dict[str, DisabledTrigger]:
    """The definition's disabled triggers by name."""
    stmt = select(DisabledTrigger).where(
        DisabledTrigger.tenant == tenant, DisabledTrigger.definition_key == key
    )
    return {d.trigger_name: d for d in (await session.execute(stmt)).scalars()}


async def set_enabled(
    session: AsyncSession, tenant: str, key: str, name: str, enabled: bool, actor: str | None
) -> bool:
    """Turn one trigger on or off by name; returns whether that changed anything."""
    if enabled:
        result = await session.execute(
            delete(DisabledTrigger).where(
                DisabledTrigger.tenant == tenant,
                DisabledTrigger.definition_key == key,
                DisabledTrigger.trigger_name == name,
            )
        )
    else:
        result = await session.execute(
            insert(DisabledTrigger)
            .values(tenant=tenant, definition_key=key, trigger_name=name, disabled_by=actor)
            .on_conflict_do_nothing()
        )
    await session.flush()
    return bool(getattr(result, "rowcount", 0))


async def remove_all(session: AsyncSession, tenant: str, key: str) -> None:
    """A deleted definition's subscriptions, hooks and trigger switches."""
    for table, column in (
        (TriggerSubscription, TriggerSubscription.definition_key),
        (DisabledTrigger, DisabledTrigger.definition_key),
    ):
        await session.execute(delete(table).where(table.tenant == tenant, column == key))
    await hooks.remove_hooks(session, tenant, key)
    await session.flush()
