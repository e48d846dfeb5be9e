"""Request dependencies as ``Annotated`` aliases; built once in the app lifespan.

Every dependency is ``async def``, even when it awaits nothing: FastAPI runs a plain
``def`` dependency in a worker thread, one hop per dependency per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from activities.registry import ActionRegistry
from app.auth import Principal, authenticate, hash_key
from tempoflow.errors import Forbidden, Unauthorized
from tempoflow.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def get_registry(request: Request) -> ActionRegistry:
    registry: ActionRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalClientDep = Annotated[Client, Depends(get_temporal)]
RegistryDep = Annotated[ActionRegistry, Depends(get_registry)]


async def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise Unauthorized(
            "an API key is required",
            hint="send 'Authorization: Bearer <key>' (tempoflow apikey create makes one)",
        )
    cache = request.app.state.principals
    hashed = hash_key(key, settings.api_key_pepper)
    principal = cache.get(hashed)
    if principal is None:
        principal = await authenticate(session, key, settings.api_key_pepper)
        if principal is not None and cache.maxsize:
            cache[hashed] = principal
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers holding one of ``roles`` (admin always passes)."""
    wanted = frozenset(roles)

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.has_any(wanted):
            raise Forbidden(
                f"this operation needs one of the roles {sorted(wanted | {'admin'})}",
                hint=f"the key has roles {sorted(principal.roles)}",
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require("publisher", "operator"))]
Publisher = Annotated[Principal, Depends(require("publisher"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require())]
