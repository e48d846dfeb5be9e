"""Where the database is: the configured URL, else the one ``tempoflow dev`` uses for
``home`` (an external URL it recorded there, or the embedded server under it)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from launcher import embedded
from tempoflow.settings import Settings

DATABASE = "tempoflow"
URL_FILE = "database-url"
"""Under ``home``: the external database URL of the dev stack that keeps its data there."""
_handles: list[Any] = []  # keep embedded servers referenced while this process runs


class DatabaseNotFound(RuntimeError):
    """No database is configured and ``home`` holds none; nothing was created."""


def record_database_url(home: Path, url: str | None) -> None:
    """Let other commands find the dev stack's external database (``None``: embedded)."""
    path = home / URL_FILE
    if url is None:
        path.unlink(missing_ok=True)
        return
    path.write_text(url + "\n")
    path.chmod(0o600)


def ensure_database_url(settings: Settings, *, create: bool = False) -> Settings:
    """Return settings with ``database_url`` set.

    Without ``TEMPOFLOW_DATABASE_URL``: the URL the dev stack recorded under ``home``, else
    the embedded server in ``<home>/pgdata`` (started if it is not running; it stops when
    the last process that attached to it exits). A new embedded cluster is created only
    with ``create``; otherwise a missing one raises :class:`DatabaseNotFound`.
    """
    if settings.database_url:
        return settings
    home = settings.home.resolve()
    recorded = home / URL_FILE
    if recorded.is_file():
        return settings.model_copy(update={"database_url": recorded.read_text().strip()})
    pgdata = home / "pgdata"
    if not create and not (pgdata / "PG_VERSION").is_file():
        raise DatabaseNotFound(
            f"no database: TEMPOFLOW_DATABASE_URL is not set and {home} holds no dev stack "
            "data; set TEMPOFLOW_HOME to the directory `tempoflow dev` keeps its data in "
            "(.tempoflow where `make dev` runs) or TEMPOFLOW_DATABASE_URL"
        )
    if not (pgdata / "PG_VERSION").is_file():
        print(f"tempoflow: creating an embedded PostgreSQL in {pgdata}", file=sys.stderr)
    server = embedded.start_postgres(pgdata)
    _handles.append(server)
    asyncio.run(embedded.create_database(embedded.database_url(server, "postgres"), DATABASE))
    return settings.model_copy(update={"database_url": embedded.database_url(server, DATABASE)})
