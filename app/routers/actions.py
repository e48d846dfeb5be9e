"""Registered actions (what ``action.call`` may name)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Reader, RegistryDep
from app.schemas import ActionPublic

router = APIRouter(prefix="/v1/actions", tags=["actions"])


@router.get("", response_model=list[ActionPublic])
async def read_actions(principal: Reader, registry: RegistryDep) -> list[ActionPublic]:
    return [ActionPublic.model_validate(spec.describe()) for spec in registry.specs()]
