"""What starts runs of a definition: its triggers one by one (list, enable, disable)
and deleting the definition (nothing starts runs of it any more).

A trigger is switched by its ``name``, apart from the published versions: the switch
survives republishing (a version that still has a trigger of that name keeps it off) and
lasts until ``enable`` or the definition's deletion. The definition-wide pause is the
other switch; a trigger starts runs only when both are on. Off means, per kind:

- event: a matching event is accepted and kept in the inbox as always (waiting runs still
  get it); its routing records a ``DISABLED`` trigger delivery with the reason, and
  turning the trigger back on does not replay it;
- webhook: a call is refused with 409 ``trigger_disabled`` and nothing is stored (the
  sender's own retries deliver it once the trigger is on again), as for a paused one;
- schedule: its Temporal Schedule is paused (times that pass meanwhile start nothing).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from temporalio.service import RPCError

from app import schedules
from app.auth import Principal
from app.deps import Admin, Publisher, Reader, SessionDep, TemporalClientDep
from app.routers.definitions import KeyPath, existing
from app.schemas import TriggerPublic, TriggersPublic
from projections import audit
from projections import definitions as data
from projections import triggers as store
from projections.models import DefinitionRow
from tempoflow.definition.model import TRIGGER_NAME
from tempoflow.errors import NotFound, ServiceUnavailable

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])

NamePath = Annotated[str, Path(pattern=TRIGGER_NAME)]


def _kind(trigger: dict[str, Any]) -> str:
    return next(k for k in ("event", "webhook", "schedule") if trigger.get(k) is not None)


async def _latest_triggers(session: SessionDep, row: DefinitionRow) -> list[dict[str, Any]]:
    if row.latest_version is None:
        return []
    version = await data.get_version(session, row.tenant, row.key, row.latest_version)
    return list(version.body.get("triggers") or []) if version is not None else []


async def _listing(session: SessionDep, row: DefinitionRow) -> TriggersPublic:
    triggers = await _latest_triggers(session, row)
    off = await store.disabled(session, row.tenant, row.key)
    items: list[TriggerPublic] = []
    for position, trigger in enumerate(triggers):
        switch = off.get(trigger.get("name") or "")
        items.append(
            TriggerPublic(
                name=trigger.get("name"),
                kind=_kind(trigger),
                event=trigger.get("event"),
                position=position,
                enabled=switch is None,
                active=switch is None and not row.paused,
                disabled_by=switch.disabled_by if switch else None,
                disabled_at=switch.disabled_at if switch else None,
            )
        )
    names = {t.get("name") for t in triggers}
    items += [
        TriggerPublic(
            name=name,
            kind=None,
            in_latest_version=False,
            enabled=False,
            active=False,
            disabled_by=switch.disabled_by,
            disabled_at=switch.disabled_at,
        )
        for name, switch in sorted(off.items())
        if name not in names
    ]
    return TriggersPublic(paused=row.paused, version=row.latest_version, items=items)


@router.get("/{key}/triggers", response_model=TriggersPublic)
async def read_triggers(key: KeyPath, principal: Reader, session: SessionDep) -> TriggersPublic:
    """The latest published version's triggers, each enabled or not, and the disabled
    names that version does not have (they stay off should a later version bring them
    back)."""
    return await _listing(session, await existing(session, principal.tenant, key))


async def _switch(
    key: str,
    name: str,
    enabled: bool,
    principal: Principal,
    session: SessionDep,
    client: TemporalClientDep,
) -> TriggersPublic:
    row = await existing(session, principal.tenant, key, for_update=True)
    triggers = await _latest_triggers(session, row)
    found = next((t for t in triggers if t.get("name") == name), None)
    off = await store.disabled(session, principal.tenant, key)
    if found is None and name not in off:
        raise NotFound(
            f"the latest published version of {key!r} has no trigger named {name!r}",
            code="trigger_not_found",
            hint="GET /v1/definitions/{key}/triggers lists them; an event trigger needs a "
            "'name' to be switched on or off by itself",
        )
    if await store.set_enabled(session, principal.tenant, key, name, enabled, principal.key_id):
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="trigger.enable" if enabled else "trigger.disable",
            target=key,
            details={"trigger": name},
        )
    paused = row.paused
    listing = await _listing(session, row)
    await session.commit()
    if found is not None and found.get("schedule") is not None:
        try:
            await schedules.pause_schedules(
                client, principal.tenant, key, [name], paused, disabled=not enabled
            )
        except RPCError as err:
            raise ServiceUnavailable(
                f"trigger {name!r} is {'enabled' if enabled else 'disabled'}, but its "
                f"schedule could not be updated in Temporal: {err.message}",
                code="schedules_not_synced",
                hint="repeat the request: it repeats the schedule update",
            ) from err
    return listing


@router.post("/{key}/triggers/{name}/disable", response_model=TriggersPublic)
async def disable_trigger(
    key: KeyPath,
    name: NamePath,
    principal: Publisher,
    session: SessionDep,
    client: TemporalClientDep,
) -> TriggersPublic:
    """Stop one trigger from starting runs (idempotent; audited when it changes): its
    events start nothing and are not replayed later, its webhook answers 409, its
    schedule is paused. Stays off across republishing until enabled."""
    return await _switch(key, name, False, principal, session, client)


@router.post("/{key}/triggers/{name}/enable", response_model=TriggersPublic)
async def enable_trigger(
    key: KeyPath,
    name: NamePath,
    principal: Publisher,
    session: SessionDep,
    client: TemporalClientDep,
) -> TriggersPublic:
    """Let one trigger start runs again (unless the definition is paused); events that
    arrived while it was off are not replayed."""
    return await _switch(key, name, True, principal, session, client)


@router.delete("/{key}", status_code=204, responses={404: {}, 503: {}})
async def delete_definition(
    key: KeyPath, principal: Admin, session: SessionDep, client: TemporalClientDep
) -> Response:
    """Delete the definition: its triggers, webhook hooks and Temporal Schedules go, so
    nothing starts runs of it; runs in flight finish on their pinned versions, and its
    versions stay readable. Repeating it repeats the schedule removal (204 again).
    ``PUT`` re-creates the key; version numbers continue and are never reused."""
    row = await data.get_definition(
        session, principal.tenant, key, for_update=True, include_deleted=True
    )
    if row is None:
        raise NotFound(f"definition {key!r} does not exist", code="definition_not_found")
    names = {
        t["name"]
        for v in await data.list_versions(session, principal.tenant, key)
        for t in v.body.get("triggers") or []
        if isinstance(t, dict) and t.get("schedule") is not None and t.get("name")
    }
    if row.deleted_at is None:
        await data.mark_deleted(session, row, principal.key_id)
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="definition.delete",
            target=key,
            details={"latestVersion": row.latest_version},
        )
    await session.commit()
    try:
        await schedules.delete_schedules(client, principal.tenant, key, names)
    except RPCError as err:
        raise ServiceUnavailable(
            f"definition {key!r} is deleted, but its schedules could not be removed from "
            f"Temporal: {err.message}",
            code="schedules_not_synced",
            hint="repeat the DELETE: it repeats the schedule removal",
        ) from err
    return Response(status_code=204)
