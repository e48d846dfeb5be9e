"""The ``tempoflow`` command: dev, api, worker, migrate, apikey, secrets, publish, run,
status, event, runs, events, tail, validate, test, bundle.

Exit codes of the commands that call the API: 0 success, 1 a check failed, 2 usage
error, 3 server or connection error (docs/ci.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tempoflow.settings import Settings

if TYPE_CHECKING:
    from activities.registry import ActionRegistry


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


def _registry(who: str) -> ActionRegistry:
    """Built-ins and plugins (logged); exits naming the plugin when one fails to load, so
    a process never runs with part of the set."""
    from activities.channels import channels_for
    from activities.plugins import PluginError, load_plugins

    try:
        settings = _settings()
        loaded = load_plugins(settings.action_modules, settings=settings)
        channels_for(loaded.registry)  # the notification channels' plugins, too
    except PluginError as err:
        print(f"tempoflow {who}: {err}; not starting", file=sys.stderr)
        sys.exit(2)
    logging.getLogger(f"tempoflow.{who}").info(
        "loaded %d actions: %s", len(loaded.registry.names()), loaded.summary()
    )
    return loaded.registry


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    registry = _registry("api")
    settings = _database()
    uvicorn.run(
        create_app(settings, registry=registry),
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

    registry = _registry("worker")
    asyncio.run(run_worker(_database(), registry))
    _exit_after_temporal(0)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from launcher import migrate

    settings = _database(create=True)
    assert settings.database_url is not None
    migrate.upgrade(settings.database_url, args.revision)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Rebuild run projections from Temporal history."""
    import json
    from datetime import datetime

    from launcher.rebuild import rebuild
    from projections.db import create_engine, session_factory
    from tempoflow.temporal_client import connect_temporal

    if not (args.run or args.since or args.all):
        print("tempoflow: say what to rebuild: --run ID, --since TIME or --all", file=sys.stderr)
        return 2
    settings = _database()
    since = datetime.fromisoformat(args.since) if args.since else None

    async def go() -> int:
        client = await connect_temporal(settings)
        engine = create_engine(settings.sqlalchemy_url, pool_size=2)
        try:
            summary = await rebuild(
                client, session_factory(engine), run_id=args.run, since=since, tenant=args.tenant
            )
        finally:
            await engine.dispose()
        print(
            json.dumps(
                {
                    "runs": summary.runs,
                    "executions": summary.executions,
                    "closedByTemporal": summary.closed_by_temporal,
                    "failures": summary.failures,
                }
            )
        )
        return 1 if summary.failures else 0

    code = asyncio.run(go())
    _exit_after_temporal(code)
    return code


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
    from launcher.apikeys import add_commands as add_apikey_commands

    add_apikey_commands(apikey_sub, _database)
    from launcher.remote import add_commands
    from launcher.secrets_cli import add_commands as add_secret_commands

    add_commands(sub)
    projections = sub.add_parser("projections", help="maintain the run projections")
    projections_sub = projections.add_subparsers(dest="projections_command", required=True)
    rebuild = projections_sub.add_parser(
        "rebuild", help="rebuild runs, steps, invocations, waits and tasks from Temporal history"
    )
    which = rebuild.add_mutually_exclusive_group()
    which.add_argument("--run", help="one run id")
    which.add_argument("--since", help="runs started at or after this ISO 8601 time")
    which.add_argument("--all", action="store_true", help="every run Temporal still holds")
    rebuild.add_argument("--tenant", help="only this tenant's runs")
    rebuild.set_defaults(func=cmd_rebuild)
    add_secret_commands(sub)
    from launcher import (
        cli_bundle,
        cli_events,
        cli_publish,
        cli_runs,
        cli_tail,
        cli_test,
        cli_validate,
    )

    cli_validate.register(sub)
    cli_test.register(sub)
    cli_bundle.register(sub)
    cli_publish.register(sub)
    cli_runs.register(sub)
    cli_events.register(sub)
    cli_tail.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from launcher import logs

    logs.configure_from_env()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
