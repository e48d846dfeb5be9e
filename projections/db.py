"""Declarative base, engine and session factory (built by callers, never at import)."""

from __future__ import annotations

from sqlalchemy import MetaData, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


Executor = AsyncSession | AsyncConnection
"""What data-access functions execute statements on: an ORM session, or a Core
connection (hot paths: no ORM unit of work, statements executed as they are)."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """An asyncpg engine for ``url`` (``postgresql+asyncpg://…``).

    ``pre_ping`` costs a round trip per checkout; the worker turns it off because its
    writes retry on transient errors anyway (a dead pooled connection is one).
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes: 08 connection, 40 rollback (serialization, deadlock), 53 resources
# (too many connections), 57 operator intervention (shutdown, starting up), 58 system.
_TRANSIENT_CLASSES = {"08", "40", "53", "57", "58"}
# 22 data exception (NUL, out of range, invalid JSON, too long), 23 integrity violation.
_PERMANENT_CLASSES = {"22", "23"}


def _sqlstate(err: BaseException) -> str | None:
    orig = getattr(err, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_transient(err: BaseException) -> bool:
    """The database is unreachable or busy: the same write may succeed later.

    Over its Unix socket a stopped embedded server gives ``FileNotFoundError``; over
    TCP ``ConnectionRefusedError``; a dropped connection an ``InterfaceError`` or an
    ``OperationalError``.
    """
    if isinstance(err, OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    state = _sqlstate(err)
    if state is not None:
        return state[:2] in _TRANSIENT_CLASSES
    return isinstance(err, OperationalError | InterfaceError)


def is_permanent(err: BaseException) -> bool:
    """The data cannot be stored as it is (retrying the same write fails the same way)."""
    if isinstance(err, StatementError) and not isinstance(err, DBAPIError):
        # Raised while binding parameters (e.g. a JSON value the serializer refuses).
        return isinstance(err.orig, ValueError | TypeError | RecursionError)
    state = _sqlstate(err)
    return state is not None and state[:2] in _PERMANENT_CLASSES


async def ping(session: AsyncSession) -> None:
    """One round trip to the database (raises when it is unreachable)."""
    await session.execute(text("select 1"))
