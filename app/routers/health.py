"""Liveness and readiness (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.errors import problem
from projections.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def read_readiness(request: Request) -> object:
    try:
        async with request.app.state.sessions() as session:
            await ping(session)
        await request.app.state.temporal.service_client.check_health()
    except Exception as err:
        return problem(request, 503, "unavailable", "Service unavailable", str(err))
    return {"status": "ready"}
