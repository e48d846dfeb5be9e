"""Where the database is: the configured URL, else the embedded server under ``home``."""

from __future__ import annotations

import asyncio
from typing import Any

from tempoflow import embedded
from tempoflow.settings import Settings

DATABASE = "tempoflow"
_handles: list[Any] = []  # keep embedded servers referenced while this process runs


def ensure_database_url(settings: Settings) -> Settings:
    """Return settings with ``database_url`` set, starting embedded PostgreSQL if needed.

    The embedded server (data in ``<home>/pgdata``) stops when the last process that
    attached to it exits.
    """
    if settings.database_url:
        return settings
    server = embedded.start_postgres(settings.home.resolve() / "pgdata")
    _handles.append(server)
    asyncio.run(embedded.create_database(embedded.database_url(server, "postgres"), DATABASE))
    return settings.model_copy(update={"database_url": embedded.database_url(server, DATABASE)})
