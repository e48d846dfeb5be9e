"""API keys of the caller's tenant (admin): list, create, revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.auth import create_api_key_row
from app.deps import Admin, SessionDep, SettingsDep
from app.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic
from projections import api_keys, audit
from tempoflow.errors import ErrorItem, NotFound, Unprocessable

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

KeyIdPath = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("", response_model=ApiKeysPublic)
async def read_api_keys(principal: Admin, session: SessionDep) -> ApiKeysPublic:
    """Every key of the tenant, revoked and expired ones too; never the keys themselves."""
    rows = await api_keys.list_keys(session, principal.tenant)
    return ApiKeysPublic(items=[ApiKeyPublic.model_validate(r) for r in rows])


@router.post("", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(
    body: ApiKeyCreate, principal: Admin, session: SessionDep, settings: SettingsDep
) -> ApiKeyCreated:
    """A new key of the caller's tenant; the response is the only time it is shown."""
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise Unprocessable(
            "expiresAt is in the past",
            code="validation_failed",
            errors=[ErrorItem(path="/expiresAt", code="in_past", message="not in the future")],
            hint="give a time in the future, or none for a key that does not expire",
        )
    key_id, secret = await create_api_key_row(
        session,
        tenant=principal.tenant,
        roles=list(body.roles),
        pepper=settings.api_key_pepper,
        name=body.name,
        expires_at=body.expires_at,
    )
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action="api_key.create",
        target=key_id,
        details={"name": body.name, "roles": sorted(set(body.roles))},
    )
    row = await api_keys.get_key(session, principal.tenant, key_id)
    await session.commit()
    public = ApiKeyPublic.model_validate(row).model_dump()
    return ApiKeyCreated(**public, key=secret)


@router.delete("/{key_id}", status_code=204)
async def revoke_api_key(key_id: KeyIdPath, principal: Admin, session: SessionDep) -> Response:
    """Revoke the key. Processes that checked it recently keep accepting it for at most
    ``TEMPOFLOW_AUTH_CACHE_SECONDS`` (10 s). Revoking a revoked key is harmless (204)."""
    if await api_keys.get_key(session, principal.tenant, key_id) is None:
        raise NotFound(f"API key {key_id!r} does not exist", code="api_key_not_found")
    if await api_keys.revoke(session, principal.tenant, key_id):
        await audit.record(
            session,
            tenant=principal.tenant,
            actor=principal.key_id,
            action="api_key.revoke",
            target=key_id,
        )
    await session.commit()
    return Response(status_code=204)
