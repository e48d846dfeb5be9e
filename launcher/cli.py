"""The ``tempoflow`` command: dev, api, worker, migrate, apikey, publish, run, status, event."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from tempoflow.settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as err:
        sys.exit(f"tempoflow: invalid settings: {err}")


def _database(*, create: bool = False) -> Settings:
    """Settings with the database URL resolved; exits with what to set when there is none."""
    from launcher.database import DatabaseNotFound, ensure_database_url

    try:
        return ensure_database_url(_settings(), create=create)
    except DatabaseNotFound as err:
        print(f"tempoflow: {err}", file=sys.stderr)
        sys.exit(2)


def _exit_after_temporal(code: int) -> None:
    """Exit without interpreter finalization once a Temporal client was used.

    The SDK's Rust runtime threads can abort CPython's finalization ("PyGILState_Release:
    thread state must be current", temporalio/sdk-python#300); everything is already shut
    down cleanly at this point, so skip the teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_dev(args: argparse.Namespace) -> int:
    from launcher.devstack import run_dev

    return run_dev(_settings())


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = _database()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        log_config=None,  # uvicorn logs through the root handler (launcher/logs.py)
        lifespan="on",
    )
    _exit_after_temporal(0)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from launcher.worker import run_worker

    asyncio.run(run_worker(_database()))
    _exit_after_temporal(0)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from launcher import migrate

    settings = _database(create=True)
    assert settings.database_url is not None
    migrate.upgrade(settings.database_url, args.revision)
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    from app.auth import create_api_key
    from projections.db import create_engine, session_factory

    settings = _database()

    async def create() -> str:
        engine = create_engine(settings.sqlalchemy_url, pool_size=1)
        try:
            async with session_factory(engine).begin() as session:
                return await create_api_key(
                    session,
                    tenant=args.tenant,
                    roles=args.role,
                    pepper=settings.api_key_pepper,
                    name=args.name,
                )
        finally:
            await engine.dispose()

    try:
        key = asyncio.run(create())
    except ValueError as err:
        print(f"tempoflow: {err}", file=sys.stderr)
        return 2
    except ProgrammingError as err:
        if "api_keys" not in str(err.orig):
            raise
        print(
            "tempoflow: the database has no Tempoflow schema; run `tempoflow migrate`",
            file=sys.stderr,
        )
        return 2
    except (OSError, DBAPIError) as err:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        print(
            f"tempoflow: cannot use the database ({reason}); "
            "check TEMPOFLOW_DATABASE_URL or TEMPOFLOW_HOME",
            file=sys.stderr,
        )
        return 2
    print(key)  # only the key on stdout, for scripts
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempoflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the whole stack on embedded servers").set_defaults(func=cmd_dev)
    sub.add_parser("api", help="run the HTTP API").set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run the Temporal worker").set_defaults(func=cmd_worker)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)
    apikey = sub.add_parser("apikey", help="manage API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key; prints only the key")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--role",
        action="append",
        required=True,
        help="admin, publisher, operator or ingest (repeatable)",
    )
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_apikey_create)
    from launcher.remote import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from launcher import logs

    logs.configure_from_env()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
