"""Secrets: write-only values, encrypted at rest; definitions refer to them by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.deps import Admin, Publisher, SessionDep, SettingsDep
from app.schemas import SecretPublic, SecretsPublic, SecretWrite
from projections import audit
from projections import secrets as data
from tempoflow.errors import Conflict, NotFound
from tempoflow.secrets import MAX_SECRETS_PER_TENANT, SECRET_NAME

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])

NamePath = Annotated[str, Path(pattern=SECRET_NAME)]


@router.put("/{name}", response_model=SecretPublic)
async def update_secret(
    name: NamePath,
    body: SecretWrite,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> SecretPublic:
    """Create or replace a secret (201 when created). The value is never returned."""
    if await data.count_others(session, principal.tenant, name) >= MAX_SECRETS_PER_TENANT:
        raise Conflict(
            f"the tenant has {MAX_SECRETS_PER_TENANT} secrets, the most it may have",
            code="secret_limit_reached",
            hint="DELETE /v1/secrets/{name} removes secrets no definition uses",
        )
    info, created = await data.put_secret(
        session, settings.keyring, principal.tenant, name, body.value
    )
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action="secret.create" if created else "secret.update",
        target=name,
    )
    await session.commit()
    response.status_code = 201 if created else 200
    return SecretPublic.model_validate(info)


@router.get("", response_model=SecretsPublic)
async def read_secrets(principal: Publisher, session: SessionDep) -> SecretsPublic:
    """The tenant's secrets: names and timestamps only."""
    rows = await data.list_secrets(session, principal.tenant)
    return SecretsPublic(items=[SecretPublic.model_validate(r) for r in rows])


@router.delete("/{name}", status_code=204)
async def delete_secret(name: NamePath, principal: Admin, session: SessionDep) -> Response:
    """Delete a secret; runs referring to it then fail with ``SecretNotFound``."""
    if not await data.delete_secret(session, principal.tenant, name):
        raise NotFound(
            f"secret {name!r} does not exist",
            code="secret_not_found",
            hint="GET /v1/secrets lists the tenant's secrets",
        )
    await audit.record(
        session,
        tenant=principal.tenant,
        actor=principal.key_id,
        action="secret.delete",
        target=name,
    )
    await session.commit()
    return Response(status_code=204)
