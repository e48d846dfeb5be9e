"""Trigger subscriptions: which definitions an event name starts (from the latest
published version's ``triggers``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from projections import hooks
from projections.models import DefinitionRow, DefinitionVersionRow, TriggerSubscription
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
            )
        )
    await session.flush()


async def active_subscriptions(
    session: AsyncSession, names: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[TriggerSubscription]]:
    """Subscriptions of unpaused definitions by (tenant, event name), for the given pairs."""
    pairs = sorted(set(names))
    stmt = (
        select(TriggerSubscription)
        .join(
            DefinitionRow,
            (DefinitionRow.tenant == TriggerSubscription.tenant)
            & (DefinitionRow.key == TriggerSubscription.definition_key),
        )
        .where(
            tuple_(TriggerSubscription.tenant, TriggerSubscription.event_name).in_(pairs),
            DefinitionRow.paused.is_(False),
        )
        .order_by(TriggerSubscription.definition_key, TriggerSubscription.position)
    )
    found: dict[tuple[str, str], list[TriggerSubscription]] = {}
    for sub in (await session.execute(stmt)).scalars():
        found.setdefault((sub.tenant, sub.event_name), []).append(sub)
    return found
