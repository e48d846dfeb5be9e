"""Liveness and readiness (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from app.errors import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def read_readiness(request: Request) -> object:
    try:
        async with request.app.state.sessions() as session:
            await session.execute(text("select 1"))
        await request.app.state.temporal.service_client.check_health()
    except Exception as err:
        return problem(request, 503, "unavailable", "Service unavailable", str(err))
    return {"status": "ready"}
