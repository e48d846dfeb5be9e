"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.errors import problem
from projections.db import ping
from projections.observability import dispatch_lag

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    return {"status": "ok"}


async def run_checks(
    checks: dict[str, Callable[[], Awaitable[Any]]], budget: float
) -> tuple[bool, dict[str, str]]:
    """Run the checks concurrently, each within ``budget`` seconds; ``(all ok, a line
    per check)``. A check fails by raising (its message is shown)."""

    async def one(check: Callable[[], Awaitable[Any]]) -> str:
        try:
            async with asyncio.timeout(budget):
                detail = await check()
        except TimeoutError:
            return f"error: no answer within {budget:g} s"
        except Exception as err:
            return f"error: {type(err).__name__}: {err}"[:300]
        return "ok" if detail is None else f"ok: {detail}"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    lines = dict(zip(checks, results, strict=True))
    return all(line.startswith("ok") for line in lines.values()), lines


@router.get("/readyz", response_model=None)
async def read_readiness(request: Request) -> object:
    """Database, Temporal and the inbox's dispatcher lag, each within
    ``readiness_timeout_seconds`` (a slow dependency answers 503, never a hang)."""
    state = request.app.state
    settings = state.settings

    async def database() -> None:
        async with state.sessions() as session:
            await ping(session)

    async def temporal() -> None:
        await state.temporal.service_client.check_health()

    async def dispatcher() -> str | None:
        limit = settings.readiness_max_dispatch_lag_seconds
        if not limit:
            return "not checked"
        async with state.sessions() as session:
            lag = await dispatch_lag(session)
        if lag > limit:
            raise RuntimeError(f"the oldest due event has waited {lag:.0f} s (limit {limit:g})")
        return f"{lag:.1f} s"

    ok, checks = await run_checks(
        {"database": database, "temporal": temporal, "dispatcher": dispatcher},
        settings.readiness_timeout_seconds,
    )
    if not ok:
        failed = ", ".join(
            f"{name} ({line})" for name, line in checks.items() if not line.startswith("ok")
        )
        return problem(
            request,
            503,
            "unavailable",
            "Service unavailable",
            failed,
            hint="the failing checks are listed in `checks`; /healthz tells whether the "
            "process itself is alive",
            extra={"checks": checks},
        )
    return {"status": "ready", "checks": checks}


@router.get("/metrics", include_in_schema=False)
async def read_metrics() -> Response:
    """Prometheus text format: this process's metrics and the Temporal SDK's."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
