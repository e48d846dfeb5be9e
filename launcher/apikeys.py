"""``tempoflow apikey create | list | revoke | rotate``: straight on the database, for
bootstrapping a tenant and for operators on the deployment (the API offers the same to
admins: ``/v1/api-keys``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
SYSTEM_ACTOR = "cli"
"""The audit log's actor for changes made with these commands."""


def _run(settings: Any, work: Callable[[AsyncSession], Awaitable[T]]) -> T | int:
    """``work`` in one transaction; a one-line error and exit code 2 when the database
    cannot be used or the input is refused."""
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    from projections.db import create_engine, session_factory

    async def go() -> T:
        engine = create_engine(settings.sqlalchemy_url, pool_size=1)
        try:
            async with session_factory(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (ValueError, LookupError) as err:
        print(f"tempoflow: {err}", file=sys.stderr)
    except ProgrammingError as err:
        if "api_keys" not in str(err.orig) and "audit_log" not in str(err.orig):
            raise
        print(
            "tempoflow: the database has no Tempoflow schema; run `tempoflow migrate`",
            file=sys.stderr,
        )
    except (OSError, DBAPIError) as err:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        print(
            f"tempoflow: cannot use the database ({reason}); "
            "check TEMPOFLOW_DATABASE_URL or TEMPOFLOW_HOME",
            file=sys.stderr,
        )
    return 2


def _expiry(days: float | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


def create(args: argparse.Namespace, settings: Any) -> int:
    from app.auth import create_api_key_row
    from projections import audit

    async def work(session: AsyncSession) -> str:
        key_id, secret = await create_api_key_row(
            session,
            tenant=args.tenant,
            roles=args.role,
            pepper=settings.api_key_pepper,
            name=args.name,
            expires_at=_expiry(args.expires_in_days),
        )
        await audit.record(
            session,
            tenant=args.tenant,
            actor=SYSTEM_ACTOR,
            action="api_key.create",
            target=key_id,
            details={"name": args.name, "roles": sorted(set(args.role))},
        )
        return secret

    key = _run(settings, work)
    if isinstance(key, int):
        return key
    print(key)  # only the key on stdout, for scripts
    return 0


def list_keys(args: argparse.Namespace, settings: Any) -> int:
    from projections import api_keys

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "id": row.id,
                "name": row.name,
                "prefix": row.prefix,
                "roles": row.roles,
                "createdAt": row.created_at.isoformat(),
                "expiresAt": row.expires_at.isoformat() if row.expires_at else None,
                "revokedAt": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in await api_keys.list_keys(session, args.tenant)
        ]

    rows = _run(settings, work)
    if isinstance(rows, int):
        return rows
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':36}  {'PREFIX':10}  {'ROLES':24}  {'STATE':8}  NAME")
    for r in rows:
        state = "revoked" if r["revokedAt"] else "expired" if _past(r["expiresAt"]) else "live"
        print(f"{r['id']:36}  {r['prefix']:10}  {','.join(r['roles']):24}  {state:8}  {r['name']}")
    return 0


def _past(iso: str | None) -> bool:
    return iso is not None and datetime.fromisoformat(iso) <= datetime.now(UTC)


async def _revoke(session: AsyncSession, tenant: str, key_id: str, action: str) -> None:
    from projections import api_keys, audit

    if await api_keys.get_key(session, tenant, key_id) is None:
        raise LookupError(f"tenant {tenant!r} has no API key {key_id!r} (tempoflow apikey list)")
    if await api_keys.revoke(session, tenant, key_id):
        await audit.record(session, tenant=tenant, actor=SYSTEM_ACTOR, action=action, target=key_id)


def revoke(args: argparse.Namespace, settings: Any) -> int:
    async def work(session: AsyncSession) -> None:
        await _revoke(session, args.tenant, args.key_id, "api_key.revoke")

    done = _run(settings, work)
    return done if isinstance(done, int) else 0


def rotate(args: argparse.Namespace, settings: Any) -> int:
    """A new key with the old one's name, roles and remaining lifetime; the old one is
    revoked in the same transaction. Prints only the new key."""
    from app.auth import create_api_key_row
    from projections import api_keys, audit

    async def work(session: AsyncSession) -> str:
        old = await api_keys.get_key(session, args.tenant, args.key_id)
        if old is None or old.revoked_at is not None:
            raise LookupError(
                f"tenant {args.tenant!r} has no live API key {args.key_id!r} "
                "(tempoflow apikey list)"
            )
        key_id, secret = await create_api_key_row(
            session,
            tenant=args.tenant,
            roles=list(old.roles),
            pepper=settings.api_key_pepper,
            name=old.name,
            expires_at=old.expires_at,
        )
        await _revoke(session, args.tenant, args.key_id, "api_key.rotate")
        await audit.record(
            session,
            tenant=args.tenant,
            actor=SYSTEM_ACTOR,
            action="api_key.create",
            target=key_id,
            details={"replaces": args.key_id, "roles": list(old.roles)},
        )
        return secret

    key = _run(settings, work)
    if isinstance(key, int):
        return key
    print(key)
    return 0


def add_commands(apikey_sub: Any, database: Callable[[], Any]) -> None:
    def bind(fn: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: fn(args, database())

    create_p = apikey_sub.add_parser("create", help="create a key; prints only the key")
    create_p.add_argument("--tenant", required=True)
    create_p.add_argument(
        "--role",
        action="append",
        required=True,
        help="admin, publisher, operator or ingest (repeatable)",
    )
    create_p.add_argument("--name", default="")
    create_p.add_argument("--expires-in-days", type=float, default=None)
    create_p.set_defaults(func=bind(create))
    list_p = apikey_sub.add_parser("list", help="the tenant's keys (never the keys themselves)")
    list_p.add_argument("--tenant", required=True)
    list_p.add_argument("--json", action="store_true")
    list_p.set_defaults(func=bind(list_keys))
    for name, fn, text in (
        ("revoke", revoke, "revoke a key (it stops working within the auth cache time)"),
        ("rotate", rotate, "replace a key: prints the new one, revokes the old"),
    ):
        p = apikey_sub.add_parser(name, help=text)
        p.add_argument("key_id")
        p.add_argument("--tenant", required=True)
        p.set_defaults(func=bind(fn))
