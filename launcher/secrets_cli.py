"""``tempoflow secrets``: make a key, re-encrypt the store under the first key."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tempoflow.keyring import KeyringError, generate_key


def cmd_generate_key(args: argparse.Namespace) -> int:
    print(generate_key())  # only the key on stdout, for scripts
    return 0


async def rotate_all(sessions: Any, keyring: Any) -> int:
    """Re-encrypt every stored value not under the keyring's first key; how many."""
    from projections import secrets

    total = 0
    while True:
        async with sessions.begin() as session:
            done = await secrets.rotate(session, keyring)
        total += done
        if done == 0:
            return total


def cmd_rotate(args: argparse.Namespace) -> int:
    from launcher.database import DatabaseNotFound, ensure_database_url
    from projections import secrets
    from projections.db import create_engine, session_factory
    from tempoflow.settings import Settings

    try:
        settings = ensure_database_url(Settings())
    except (ValueError, DatabaseNotFound) as err:
        print(f"tempoflow: {err}", file=sys.stderr)
        return 2
    keyring = settings.keyring

    async def rotate() -> tuple[int, dict[str, int]]:
        engine = create_engine(settings.sqlalchemy_url, pool_size=1)
        try:
            sessions = session_factory(engine)
            count = await rotate_all(sessions, keyring)
            async with sessions() as session:
                return count, await secrets.key_usage(session)
        finally:
            await engine.dispose()

    try:
        count, usage = asyncio.run(rotate())
    except KeyringError as err:
        print(f"tempoflow: {err}", file=sys.stderr)
        return 2
    print(f"re-encrypted {count} secret(s) under key {keyring.primary_id}")
    for kid, n in sorted(usage.items()):
        state = "first key" if kid == keyring.primary_id else "NOT CONFIGURED"
        if kid != keyring.primary_id and kid in keyring.key_ids:
            state = "older key"
        print(f"  key {kid}: {n} secret(s) ({state})")
    return 0


def add_commands(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="manage the secret store's keys")
    secrets_sub = secrets.add_subparsers(dest="secrets_command", required=True)
    secrets_sub.add_parser(
        "generate-key", help="print a new key for TEMPOFLOW_SECRETS_KEY"
    ).set_defaults(func=cmd_generate_key)
    secrets_sub.add_parser(
        "rotate", help="re-encrypt every secret under the first key of TEMPOFLOW_SECRETS_KEY"
    ).set_defaults(func=cmd_rotate)
