"""A Temporal dev server for the tests that is surely ours and started in time.

The SDK's ``WorkflowEnvironment.start_local`` picks a free port, releases it, starts the
server, and waits 5 s for *anything* to answer on that port. On a busy machine (other
suites starting servers beside this one) the port can be taken in between: the server
then exits with "address already in use" while the SDK talks to the other process, until
that one stops ("connection refused" in the middle of a test). The dev server also picks
several internal ports of its own, which can collide the same way.

Here the server counts as started only once *it* prints its banner (it does so after
binding all its ports); a server that exits first is started again on a fresh port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import uvicorn
from starlette.types import ASGIApp
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from launcher import embedded

STARTUP_SECONDS = 90.0
ATTEMPTS = 5
# What the SDK's start_local adds; Tempoflow's human tasks use workflow Updates.
SDK_DYNAMIC_CONFIG = [
    "--dynamic-config-value",
    "frontend.enableUpdateWorkflowExecution=true",
    "--dynamic-config-value",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
]


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` on a real uvicorn server on a free loopback port; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def listener_is_ours(port: int) -> bool:
    """Whether what listens on ``port`` is a child of this process (the server we started,
    not another suite's that took the port first)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            with contextlib.suppress(psutil.Error):
                return conn.pid is not None and psutil.Process(conn.pid).ppid() == os.getpid()
    return False


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: bound, never
    listening, so no other process can start listening on it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def free_port() -> int:
    """A port nothing listens on now (it may be taken before it is used: see above)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporalDevServer:
    """``temporal server start-dev`` on 127.0.0.1; with ``db_file`` it can be stopped and
    started again on the same data (and the same port, which its clients know)."""

    def __init__(self, extra_args: list[str] | None = None, db_file: Path | None = None) -> None:
        self.extra_args = [*SDK_DYNAMIC_CONFIG, *(extra_args or [])]
        self.db_file = db_file
        self.port: int | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._log_dir = tempfile.TemporaryDirectory(prefix="tempoflow-temporal-")

    @property
    def address(self) -> str:
        assert self.port is not None, "not started"
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start on a fresh port, or on the same port again after :meth:`stop`."""
        keep_port = self.port is not None
        failures: list[str] = []
        for attempt in range(ATTEMPTS):
            if not keep_port:
                self.port = free_port()
            failure = await self._start_once(attempt)
            if failure is None:
                return
            failures.append(failure)
            if keep_port:  # the port is taken for now: wait a little, then try it again
                await asyncio.sleep(1.0 + attempt)
        raise RuntimeError(f"the Temporal dev server did not start: {failures}")

    async def _start_once(self, attempt: int) -> str | None:
        assert self.port is not None
        log = Path(self._log_dir.name) / f"server-{self.port}-{attempt}.log"
        with log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                *embedded.temporal_dev_server_command(
                    port=self.port, ui_port=None, db_file=self.db_file, extra=self.extra_args
                ),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        banner = f"localhost:{self.port}"
        while loop.time() < deadline:
            text = log.read_text(errors="replace")
            if self.process.returncode is not None:
                self.process = None
                return text.strip()[-300:] or "exited"
            if any(
                line.startswith("Temporal Server:") and banner in line for line in text.splitlines()
            ):
                await embedded.wait_for_port("127.0.0.1", self.port, within=STARTUP_SECONDS)
                return None
            await asyncio.sleep(0.1)
        await self.stop()
        return f"no banner within {STARTUP_SECONDS} s"

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def close(self) -> None:
        await self.stop()
        with contextlib.suppress(OSError):
            self._log_dir.cleanup()

    async def connect(self) -> Client:
        return await Client.connect(self.address, data_converter=pydantic_data_converter)
