"""Registered actions (what ``action.call`` may name) and which running workers have them."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from app.deps import Reader, RegistryDep, SessionDep, SettingsDep
from app.schemas import ActionPublic, WorkerAvailability
from projections.workers import ActionPresence, action_presence

router = APIRouter(prefix="/v1/actions", tags=["actions"])


def _workers(presence: ActionPresence | None) -> WorkerAvailability:
    if presence is None:
        return WorkerAvailability(available=False)
    return WorkerAvailability(
        available=presence.available,
        last_seen=presence.last_seen,
        versions=sorted(presence.versions),
    )


@router.get("", response_model=list[ActionPublic])
async def read_actions(
    principal: Reader, registry: RegistryDep, session: SessionDep, settings: SettingsDep
) -> list[ActionPublic]:
    """Every action the API knows (schemas, declared metadata, worker availability),
    then the actions only the workers of this task queue have (``registered: false``)."""
    presence = await action_presence(
        session, settings.task_queue, timedelta(seconds=settings.worker_presence_seconds)
    )
    known = [
        ActionPublic.model_validate(
            {**spec.describe(), "workers": _workers(presence.get(spec.name))}
        )
        for spec in registry.specs()
    ]
    unknown = [
        ActionPublic(name=name, version=None, registered=False, workers=_workers(presence[name]))
        for name in sorted(set(presence) - set(registry.names()))
    ]
    return known + unknown
