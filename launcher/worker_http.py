"""The worker's small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

A Starlette app served by uvicorn inside the worker's event loop (both already
dependencies of the API), so readiness checks use the worker's own Temporal client and
database pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from app.routers.health import run_checks
from projections.db import ping
from tempoflow.settings import Settings

log = logging.getLogger("tempoflow.worker")


def worker_app(
    client: Client, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> Starlette:
    """``/metrics`` (Prometheus), ``/healthz`` (alive) and ``/readyz`` (Temporal and the
    database, each within ``readiness_timeout_seconds``)."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        async def database() -> None:
            async with sessions() as session:
                await ping(session)

        async def temporal() -> None:
            await client.service_client.check_health()

        ok, checks = await run_checks(
            {"database": database, "temporal": temporal}, settings.readiness_timeout_seconds
        )
        body = {"status": "ready" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


class WorkerHttp:
    """Serves :func:`worker_app` on ``host:port`` (0: any free port)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.host, self._port = host, port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Bind (a clear error when the port is taken), then serve in the background."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError as err:
            sock.close()
            raise RuntimeError(
                f"the worker's metrics port {self.host}:{self._port} cannot be bound ({err}); "
                "set TEMPOFLOW_WORKER_METRICS_PORT (0 turns the server off)"
            ) from None
        sock.set_inheritable(True)
        self._socket = sock
        self._task = asyncio.create_task(
            self.server.serve(sockets=[sock]), name="tempoflow-worker-http"
        )
        while not self.server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the worker's HTTP server did not start")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
